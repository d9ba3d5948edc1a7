"""What the network predicts, how its input is scaled, and the training loss.

One DDPM forward process (``x_t = sqrt(a) x_0 + sqrt(1 - a) eps`` with ``a = alpha_bar_t``,
Ho et al. 2020, Eq. 4) and three ways to parameterise the network ``F`` on it:

============  ======================  =================================  ========================
prediction    network input           target of ``F``                    F-error per x0-error^2
============  ======================  =================================  ========================
``epsilon``   ``x_t``                 ``eps`` (Ho et al. 2020, Eq. 14)   ``SNR``
``v``         ``x_t``                 ``sqrt(a) eps - sqrt(1-a) x_0``    ``SNR + 1``
                                      (Salimans & Ho 2022, Sec. 4)
``edm``       ``c_in x``              ``(x_0 - c_skip x) / c_out``       ``SNR + 1 / sigma_d^2``
                                      (Karras et al. 2022, Eq. 7)
============  ======================  =================================  ========================

with ``SNR = a / (1 - a)`` and, for ``edm``, ``sigma^2 = 1 / SNR``, ``x = x_t / sqrt(a)`` (the
variance-exploding view of the same sample), ``c_in = 1 / sqrt(sigma^2 + sigma_d^2)``,
``c_skip = sigma_d^2 / (sigma^2 + sigma_d^2)`` and ``c_out = sigma sigma_d / sqrt(sigma^2 +
sigma_d^2)`` (Table 1). ``v`` is ``edm`` with ``sigma_d = 1`` up to the sign of ``F``.

The loss is the mean squared error on ``F``, optionally weighted by Min-SNR-gamma (Hang et al.
2023): each sample's x0-space weight becomes ``min(SNR, gamma)``, i.e. its F-space weight
``min(SNR, gamma) / (F-error per x0-error^2)`` from the table. Unweighted, ``epsilon`` is DDPM's
Eq. 14 and ``edm`` is EDM's own weighting ``lambda(sigma) = 1 / c_out^2`` (Eq. 8).

Noise levels are drawn uniformly over the training timesteps (DDPM) or, like EDM (Sec. 5,
"noise distribution"), from ``ln sigma ~ N(P_mean, P_std^2)`` and rounded to the nearest
timestep of the schedule.

Samplers only ever see noise predictions: :func:`eps_model` turns any of the three into one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from dlcv.diffusion.schedule import NoiseSchedule

PREDICTIONS = ("epsilon", "v", "edm")
TIMESTEP_SAMPLING = ("uniform", "lognormal")

Net = Callable[..., torch.Tensor]
"""``net(x, t, *conditioning) -> F``: the network, with any conditioning after ``t``."""


@dataclass(frozen=True)
class Objective:
    """The parameterisation and the training distribution of noise levels.

    ``prediction`` and ``sigma_data`` describe the trained network (inference needs them);
    ``min_snr_gamma`` (``None``: unweighted) and the timestep sampling matter for training only.
    """

    prediction: str = "epsilon"
    sigma_data: float = 0.5  # edm: the standard deviation of the data (images in [-1, 1])
    min_snr_gamma: float | None = None
    timestep_sampling: str = "uniform"
    lognormal_mean: float = -1.2  # EDM's P_mean
    lognormal_std: float = 1.2  # EDM's P_std

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.timestep_sampling not in TIMESTEP_SAMPLING:
            raise ValueError(
                f"timestep_sampling must be one of {TIMESTEP_SAMPLING}, got {self.timestep_sampling!r}"
            )
        for name in ("sigma_data", "lognormal_std"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if not math.isfinite(self.lognormal_mean):
            raise ValueError(f"lognormal_mean must be finite, got {self.lognormal_mean}")
        gamma = self.min_snr_gamma
        if gamma is not None and not (math.isfinite(gamma) and gamma > 0):
            raise ValueError(f"min_snr_gamma must be a positive number or None, got {gamma}")

    @classmethod
    def from_config(cls, diffusion: Any, train: Any | None = None) -> Objective:
        """Read ``prediction``/``sigma_data`` from a ``diffusion`` section and the training
        options from a ``train`` section (mappings; missing keys take the defaults)."""
        train = train or {}
        kwargs = {k: diffusion[k] for k in ("prediction", "sigma_data") if k in diffusion}
        for key in ("min_snr_gamma", "timestep_sampling", "lognormal_mean", "lognormal_std"):
            if key in train:
                kwargs[key] = train[key]
        return cls(**kwargs)

    # ---- the parameterisation, per sample: ``a`` is alpha_bar_t shaped to broadcast ----------

    def input_scale(self, a: torch.Tensor) -> torch.Tensor:
        """``c`` with network input ``c x_t``: 1, or EDM's
        ``c_in / sqrt(a) = 1 / sqrt(1 - a + a sigma_d^2)``."""
        if self.prediction != "edm":
            return torch.ones_like(a)
        return (1.0 - a + a * self.sigma_data**2).rsqrt()

    def target(self, x0: torch.Tensor, eps: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """What ``F`` should output for ``x_t`` made of ``x0`` and ``eps``."""
        if self.prediction == "epsilon":
            return eps
        if self.prediction == "v":
            return a.sqrt() * eps - (1.0 - a).sqrt() * x0
        c_skip, c_out = self._skip_out(a)
        x = x0 + ((1.0 - a) / a).sqrt() * eps
        return (x0 - c_skip * x) / c_out

    def to_eps(self, out: torch.Tensor, x_t: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The noise prediction implied by the network output ``out`` at ``x_t``."""
        if self.prediction == "epsilon":
            return out
        if self.prediction == "v":
            return a.sqrt() * out + (1.0 - a).sqrt() * x_t
        c_skip, c_out = self._skip_out(a)
        x = x_t / a.sqrt()
        x0 = c_skip * x + c_out * out
        return (x - x0) / ((1.0 - a) / a).sqrt()

    def weight(self, a: torch.Tensor) -> torch.Tensor:
        """Per-sample weight of the F-space squared error (1 without Min-SNR)."""
        if self.min_snr_gamma is None:
            return torch.ones_like(a)
        snr = a / (1.0 - a)
        per_x0 = {"epsilon": snr, "v": snr + 1.0, "edm": snr + 1.0 / self.sigma_data**2}[self.prediction]
        return snr.clamp(max=self.min_snr_gamma) / per_x0

    def _skip_out(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigma2, sd2 = (1.0 - a) / a, self.sigma_data**2
        return sd2 / (sigma2 + sd2), (sigma2 * sd2 / (sigma2 + sd2)).sqrt()


def sample_timesteps(
    schedule: NoiseSchedule, n: int, objective: Objective, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` training timesteps (long, CPU) drawn as the objective says."""
    if objective.timestep_sampling == "uniform":
        return torch.randint(0, schedule.num_train_timesteps, (n,), generator=generator)
    log_sigma = objective.lognormal_mean + objective.lognormal_std * torch.randn(
        n, generator=generator, dtype=torch.float64
    )
    alpha_bar = schedule.alpha_bar
    log_sigmas = 0.5 * torch.log((1.0 - alpha_bar) / alpha_bar)  # increasing in t
    t = torch.searchsorted(log_sigmas, log_sigma).clamp(1, len(alpha_bar) - 1)
    nearer_below = (log_sigma - log_sigmas[t - 1]) < (log_sigmas[t] - log_sigma)
    return (t - nearer_below.long()).clamp(0, len(alpha_bar) - 1)


def diffusion_loss(
    net: Net,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    generator: torch.Generator | None = None,
    objective: Objective = Objective(),
) -> torch.Tensor:
    """The training loss for a batch of clean samples ``x0`` (Ho et al. 2020, Algorithm 1,
    generalised by :class:`Objective`): draw ``t`` and ``eps``, form ``x_t``, regress ``F``.

    ``net(input, t)`` sees the scaled ``x_t`` (bind any conditioning beforehand).
    Randomness is drawn on the CPU from ``generator`` so a seeded run is repeatable on any
    device. The default objective is DDPM's simplified Eq. 14.
    """
    t = sample_timesteps(schedule, x0.shape[0], objective, generator)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    a = schedule.alpha_bar[t].to(x0.device, torch.float32).view(-1, *([1] * (x0.ndim - 1)))
    t = t.to(x0.device)
    x_t = schedule.add_noise(x0, noise, t)
    out = net((objective.input_scale(a) * x_t).to(x0.dtype), t).float()
    per_sample = (out - objective.target(x0.float(), noise.float(), a)).pow(2).flatten(1).mean(1)
    if objective.min_snr_gamma is None:
        return per_sample.mean()
    return (objective.weight(a).flatten() * per_sample).mean()


def eps_model(net: Net, schedule: NoiseSchedule, objective: Objective) -> Net:
    """``net`` seen as a noise predictor: ``eps(x_t, t, *cond)`` for the samplers and guidance.

    Scales the input and converts the output as the objective says; for ``epsilon`` it is
    ``net`` itself. Guidance may combine these outputs linearly: the conversion is affine in
    the network output at a fixed ``x_t``, so guiding ``eps`` equals guiding ``F``.
    """
    if objective.prediction == "epsilon":
        return net
    alpha_bar = schedule.alpha_bar

    def eps(x_t: torch.Tensor, t: torch.Tensor, *cond: Any) -> torch.Tensor:
        a = alpha_bar[t.cpu()].to(x_t.device, torch.float32).view(-1, *([1] * (x_t.ndim - 1)))
        out = net((objective.input_scale(a) * x_t).to(x_t.dtype), t, *cond).float()
        return objective.to_eps(out, x_t.float(), a).to(x_t.dtype)

    return eps
