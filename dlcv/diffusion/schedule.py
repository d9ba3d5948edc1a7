"""Noise schedules and the forward (noising) process of DDPM.

Notation follows Ho et al., "Denoising Diffusion Probabilistic Models" (2020):
``beta_t`` the per-step variances, ``alpha_t = 1 - beta_t`` and
``alpha_bar_t = prod_{s<=t} alpha_s``, with timesteps indexed ``0 .. T-1``.
"""

from __future__ import annotations

import torch


class NoiseSchedule:
    """A discrete variance schedule, kept in float64 on the CPU.

    Coefficients are read out as Python floats (samplers) or gathered per batch
    element and cast to the data's dtype and device (training), so the schedule
    itself never moves.
    """

    def __init__(self, betas: torch.Tensor) -> None:
        betas = betas.detach().to("cpu", torch.float64)
        if betas.ndim != 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a 1-D tensor with values in (0, 1)")
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alpha_bar = torch.cumprod(self.alphas, dim=0)
        """``alpha_bar[t] = prod_{s<=t} alpha_s`` (float64, CPU), read as ``schedule.alpha_bar[t]``."""

    @property
    def num_train_timesteps(self) -> int:
        return self.betas.numel()

    @classmethod
    def linear(
        cls, num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 2e-2
    ) -> NoiseSchedule:
        """DDPM's linear schedule (Ho et al. 2020, Sec. 4): ``beta`` from 1e-4 to 0.02."""
        return cls(torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float64))

    @classmethod
    def scaled_linear(
        cls,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.00085,
        beta_end: float = 0.012,
    ) -> NoiseSchedule:
        """Stable Diffusion's schedule: linear in ``sqrt(beta)``, then squared."""
        root = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64)
        return cls(root**2)

    def _gather(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        out = values[t.cpu()].to(device=like.device, dtype=like.dtype)
        return out.view(-1, *([1] * (like.ndim - 1)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Sample ``q(x_t | x_0)`` (Ho et al. 2020, Eq. 4):
        ``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``."""
        a = self._gather(self.alpha_bar.sqrt(), t, x0)
        s = self._gather((1.0 - self.alpha_bar).sqrt(), t, x0)
        return a * x0 + s * noise
