"""Interpolation between two noise tensors."""

from __future__ import annotations

import math

import torch


def lerp(x0: torch.Tensor, x1: torch.Tensor, alpha: float) -> torch.Tensor:
    """Linear interpolation ``(1 - alpha) x0 + alpha x1``."""
    return (1.0 - alpha) * x0 + alpha * x1


def slerp(x0: torch.Tensor, x1: torch.Tensor, alpha: float) -> torch.Tensor:
    """Spherical linear interpolation (Shoemake 1985), as used for DDIM noises.

    ``theta = arccos(<x0, x1> / (|x0| |x1|))`` over all elements;
    ``slerp = sin((1 - alpha) theta) / sin(theta) x0 + sin(alpha theta) / sin(theta) x1``.
    Gaussian noises keep their typical norm along the path, unlike ``lerp``.
    Falls back to ``lerp`` when the two are (nearly) parallel.
    """
    a, b = x0.double().flatten(), x1.double().flatten()
    cos = float(torch.dot(a, b) / (a.norm() * b.norm()))
    theta = math.acos(max(-1.0, min(1.0, cos)))
    if math.sin(theta) < 1e-6:
        return lerp(x0, x1, alpha)
    w0 = math.sin((1.0 - alpha) * theta) / math.sin(theta)
    w1 = math.sin(alpha * theta) / math.sin(theta)
    return w0 * x0 + w1 * x1
