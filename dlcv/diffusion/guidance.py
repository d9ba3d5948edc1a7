"""Classifier-free guidance (Ho & Salimans, "Classifier-Free Diffusion Guidance", 2021)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dlcv.diffusion.samplers import EpsFn

CondModel = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


def classifier_free_guidance(
    model: CondModel, cond: torch.Tensor, uncond: torch.Tensor, scale: float
) -> EpsFn:
    """Bind conditioning into an ``eps_fn`` that applies classifier-free guidance.

    ``eps = eps(x, t, uncond) + scale * (eps(x, t, cond) - eps(x, t, uncond))``,
    Ho & Salimans' Eq. 6 written with ``scale = 1 + w``: ``scale = 1`` is the plain
    conditional model, ``scale = 0`` the unconditional one, larger values
    guide harder (Stable Diffusion's ``guidance_scale``). Both halves are
    evaluated in ONE forward pass of a doubled batch, unconditional first.

    ``model(x, t, c)`` takes conditioning batched along dim 0 like ``x``: class
    indices ``(B,)``, text embeddings ``(B, 77, D)``, ...; ``cond`` and
    ``uncond`` must have the same shape. A batch-1 ``uncond`` is broadcast.
    """
    if uncond.shape[0] == 1 and cond.shape[0] > 1:
        uncond = uncond.expand(cond.shape[0], *uncond.shape[1:])
    if scale == 1.0:
        return lambda x, t: model(x, t, cond)
    if scale == 0.0:
        return lambda x, t: model(x, t, uncond)
    both = torch.cat([uncond, cond])

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps_u, eps_c = model(torch.cat([x, x]), torch.cat([t, t]), both).chunk(2)
        return eps_u + scale * (eps_c - eps_u)

    return guided
