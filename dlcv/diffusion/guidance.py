"""Classifier-free guidance (Ho & Salimans, "Classifier-Free Diffusion Guidance", 2021)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dlcv.diffusion.samplers import EpsFn

CondModel = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


def classifier_free_guidance(
    model: CondModel,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    scale: float | torch.Tensor,
    interval: tuple[float, float] | None = None,
) -> EpsFn:
    """Bind conditioning into an ``eps_fn`` that applies classifier-free guidance.

    ``eps = eps(x, t, uncond) + scale * (eps(x, t, cond) - eps(x, t, uncond))``,
    Ho & Salimans' Eq. 6 written with ``scale = 1 + w``: ``scale = 1`` is the plain
    conditional model, ``scale = 0`` the unconditional one, larger values
    guide harder (Stable Diffusion's ``guidance_scale``). Both halves are
    evaluated in ONE forward pass of a doubled batch, unconditional first.
    ``scale`` is one number or one per sample (a tensor ``(B,)``).

    ``interval = (t_low, t_high)``: guidance only at the timesteps ``t_low <= t <= t_high``;
    elsewhere the conditional model alone (scale 1, one forward pass), as in "Applying
    Guidance in a Limited Interval Improves Sample and Distribution Quality in Diffusion
    Models" (Kynkaenniemi et al., 2024): guidance at high noise mostly narrows the
    variety and at low noise does little.

    ``model(x, t, c)`` takes conditioning batched along dim 0 like ``x``: class
    indices ``(B,)``, text embeddings ``(B, 77, D)``, ...; ``cond`` and
    ``uncond`` must have the same shape. A batch-1 ``uncond`` is broadcast.
    """
    if uncond.shape[0] == 1 and cond.shape[0] > 1:
        uncond = uncond.expand(cond.shape[0], *uncond.shape[1:])
    per_sample = isinstance(scale, torch.Tensor)
    if not per_sample and scale == 1.0:
        return lambda x, t: model(x, t, cond)
    if not per_sample and scale == 0.0 and interval is None:
        return lambda x, t: model(x, t, uncond)
    both = torch.cat([uncond, cond])

    def guided(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if interval is not None and not interval[0] <= float(t.reshape(-1)[0]) <= interval[1]:
            return model(x, t, cond)
        eps_u, eps_c = model(torch.cat([x, x]), torch.cat([t, t]), both).chunk(2)
        w = scale.to(eps_u).view(-1, *[1] * (eps_u.dim() - 1)) if per_sample else scale
        return eps_u + w * (eps_c - eps_u)

    return guided
