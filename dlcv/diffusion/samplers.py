"""Samplers as plain functions: DDPM ancestral sampling, DDIM and DPM-Solver++(2M) (ODE or SDE).

Notation (the papers', with our 0-based timesteps)
---------------------------------------------------

=====================  ==============================================================
``x_t``                the sample entering the step at timestep ``t``
``eps``                the model's noise prediction ``eps_fn(x_t, t)``
``x0``                 the predicted clean sample, ``(x_t - sqrt(1 - alpha_bar_t) eps) /
                       sqrt(alpha_bar_t)`` (Ho et al. 2020, Eq. 15)
``beta_t``             the schedule's variance at ``t``; ``alpha_t = 1 - beta_t``
``alpha_bar_t``        ``prod_{s<=t} alpha_s``: ``schedule.alpha_bar[t]``
``alpha_bar_prev``     ``alpha_bar`` of the timestep the step goes to (``1.0``: ``x_0`` itself)
``alpha_bar_final``    ``alpha_bar_prev`` of a loop's last step (default ``alpha_bar[0]``)
``sigma``              the standard deviation of the fresh noise a step adds
``eta``                DDIM's interpolation between deterministic (0) and DDPM (1)
``lambda``             DPM-Solver's half log-SNR, ``log(sqrt(alpha_bar) / sqrt(1 - alpha_bar))``
=====================  ==============================================================

Each step is written once, as a function of the current sample, the predicted noise and
two levels of the schedule, ``(x_t, eps, alpha_bar_t, alpha_bar_prev, *, options)``; each
``*_sample`` loop only walks the timesteps, calls the model through ``eps_fn(x_t, t)`` and
hands the result to its step. Options after the tensors and the schedule are keyword-only.
Coefficients are Python floats taken from the float64 schedule, so a loop adds no device
work beyond the network and a few fused multiply-adds.

Timesteps are 0-based indices into the schedule (``0 .. T-1``); the papers' ``x_t`` with
``t = 1 .. T`` is the sample entering our step ``t - 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from tqdm.auto import tqdm

from dlcv.diffusion.schedule import NoiseSchedule

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Timesteps = Sequence[int] | Iterable[int]
StepCallback = Callable[[int, torch.Tensor], None]
"""``callback(t, x)``: ``x`` is the sample entering the step at timestep ``t``;
after the last step it is called once more with ``t = -1`` and the final sample."""


#: Where a sampler's fresh noise comes from: one generator for the batch, or one per image
#: (image ``i`` then gets the same noise whatever batch it is sampled in).
Generators = torch.Generator | Sequence[torch.Generator] | None


def _randn_like(x: torch.Tensor, generator: Generators) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn on the generator's device."""
    if generator is None:
        return torch.randn_like(x)
    if isinstance(generator, torch.Generator):
        return torch.randn(x.shape, generator=generator, device=generator.device).to(x.device, x.dtype)
    if len(generator) != x.shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {x.shape[0]}")
    noise = [torch.randn(x.shape[1:], generator=g, device=g.device) for g in generator]
    return torch.stack(noise).to(x.device, x.dtype)


X0Clip = bool | Callable[[torch.Tensor], torch.Tensor]
"""How a predicted ``x0`` is kept in the data's range: ``True`` clamps it to ``[-1, 1]``
(images), ``False`` leaves it, a function maps it (e.g. a latent model's "decode, clamp,
encode")."""


def _predict_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, clip_x0: X0Clip) -> torch.Tensor:
    """``x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)`` (Ho et al. 2020, Eq. 15),
    then kept in the data's range as ``clip_x0`` says (:data:`X0Clip`)."""
    x0 = (x_t - (1.0 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t**0.5
    if callable(clip_x0):
        return clip_x0(x0)
    return x0.clamp(-1.0, 1.0) if clip_x0 else x0


def _descending(timesteps: Timesteps, name: str) -> list[int]:
    steps = [int(t) for t in timesteps]
    if any(a <= b for a, b in zip(steps, steps[1:], strict=False)):
        raise ValueError(f"{name} timesteps must be strictly descending")
    return steps


def _alpha_bar_final(schedule: NoiseSchedule, alpha_bar_final: float | None) -> float:
    return float(schedule.alpha_bar[0]) if alpha_bar_final is None else float(alpha_bar_final)


def _timestep(t: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)


def ddpm_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    alpha_bar_t: float,
    alpha_bar_prev: float,
    *,
    noise: torch.Tensor | None = None,
    clip_x0: X0Clip = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ancestral step ``x_t -> x_prev`` of DDPM; returns ``(x_prev, x0)``.

    Ho et al., "Denoising Diffusion Probabilistic Models" (2020), the posterior
    ``q(x_{t-1} | x_t, x_0)`` of Eqs. 6-7 at the predicted ``x0`` (without clipping, Eq. 11
    and Algorithm 2 with ``sigma_t^2 = beta~_t``):

    1. ``beta_t = 1 - alpha_bar_t / alpha_bar_prev``
    2. ``x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``, clipped (Eq. 15)
    3. ``mean = sqrt(alpha_bar_prev) beta_t / (1 - alpha_bar_t) x0
       + sqrt(1 - beta_t) (1 - alpha_bar_prev) / (1 - alpha_bar_t) x_t`` (Eq. 7)
    4. ``x_prev = mean + sqrt(beta~_t) noise`` with
       ``beta~_t = (1 - alpha_bar_prev) / (1 - alpha_bar_t) beta_t`` (Eq. 7);
       the last step (``alpha_bar_prev = 1``) adds no noise.
    """
    # 1. the step's own variance
    beta_t = 1.0 - alpha_bar_t / alpha_bar_prev
    # 2. the predicted x0
    x0 = _predict_x0(x_t, eps, alpha_bar_t, clip_x0)
    # 3. the posterior mean
    coef_x0 = alpha_bar_prev**0.5 * beta_t / (1.0 - alpha_bar_t)
    coef_xt = (1.0 - beta_t) ** 0.5 * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
    x_prev = coef_x0 * x0 + coef_xt * x_t
    # 4. the posterior noise
    if alpha_bar_prev < 1.0:
        if noise is None:
            raise ValueError("ddpm_step needs noise before the last step")
        variance = max((1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * beta_t, 1e-20)
        x_prev = x_prev + variance**0.5 * noise
    return x_prev, x0


def ddim_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    alpha_bar_t: float,
    alpha_bar_prev: float,
    *,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip_x0: X0Clip = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step ``x_t -> x_prev``; returns ``(x_prev, x0)``.

    Song et al., "Denoising Diffusion Implicit Models" (2021), Eq. 12 (the recipe of
    diffusers' ``DDIMScheduler.step``):

    1. ``x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``, clipped; ``eps``
       stays the model's prediction (as in diffusers)
    2. ``sigma = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t /
       alpha_bar_prev)`` (Eq. 16): 0 is deterministic, ``eta = 1`` DDPM's posterior variance
    3. ``x_prev = sqrt(alpha_bar_prev) x0 + sqrt(1 - alpha_bar_prev - sigma^2) eps``
       ("predicted x0" plus "direction pointing to x_t", Eq. 12)
    4. ``x_prev += sigma noise`` ("random noise", Eq. 12)
    """
    # 1. the predicted x0
    x0 = _predict_x0(x_t, eps, alpha_bar_t, clip_x0)
    # 2. the noise's standard deviation
    sigma = 0.0
    if eta > 0:
        variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)
        sigma = eta * variance**0.5
    # 3. predicted x0 plus the direction pointing to x_t
    x_prev = alpha_bar_prev**0.5 * x0 + max(1.0 - alpha_bar_prev - sigma**2, 0.0) ** 0.5 * eps
    # 4. random noise
    if sigma > 0:
        if noise is None:
            raise ValueError("ddim_step needs noise when eta > 0")
        x_prev = x_prev + sigma * noise
    return x_prev, x0


def ddpm_sample(
    eps_fn: EpsFn,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    generator: Generators = None,
    clip_x0: X0Clip = True,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Run DDPM's reverse process from ``x = x_T`` through every timestep ``T-1 .. 0``."""
    alpha_bar = schedule.alpha_bar
    for t in tqdm(
        range(schedule.num_train_timesteps - 1, -1, -1), desc="DDPM", disable=not progress, leave=False
    ):
        if callback is not None:
            callback(t, x)
        eps = eps_fn(x, _timestep(t, x))
        noise = _randn_like(x, generator) if t > 0 else None
        alpha_bar_prev = float(alpha_bar[t - 1]) if t > 0 else 1.0
        x, _ = ddpm_step(
            x, eps.to(x.dtype), float(alpha_bar[t]), alpha_bar_prev, noise=noise, clip_x0=clip_x0
        )
    if callback is not None:
        callback(-1, x)
    return x


def ddim_timesteps(num_steps: int, num_train_timesteps: int = 1000, offset: int = 1) -> list[int]:
    """Uniformly spaced DDIM timesteps, descending: ``k * (T // num_steps) + offset``.

    With 50 of 1000 steps and ``offset=1`` this is ``981, 961, ..., 1``: the
    course's convention and Stable Diffusion v1's (diffusers'
    ``timestep_spacing="leading"`` with ``steps_offset=1``).
    """
    if not 0 < num_steps <= num_train_timesteps:
        raise ValueError(f"num_steps must be in 1..{num_train_timesteps}, got {num_steps}")
    stride = num_train_timesteps // num_steps
    steps = [k * stride + offset for k in reversed(range(num_steps))]
    if steps[0] >= num_train_timesteps:
        raise ValueError(f"offset {offset} pushes timestep {steps[0]} past {num_train_timesteps - 1}")
    return steps


def dpm_solver_timesteps(num_steps: int, num_train_timesteps: int = 1000, offset: int = 1) -> list[int]:
    """DPM-Solver's timesteps in Stable Diffusion's "leading" convention, descending:
    ``k * (T // (num_steps + 1)) + offset`` for ``k = num_steps .. 1``.

    The stride divides by ``num_steps + 1``, not ``num_steps`` as in
    :func:`ddim_timesteps`: the solver's last step goes on to ``x_0`` itself, one stride
    below the last timestep. With 20 of 1000 steps and ``offset=1`` this is ``941, 894,
    ..., 48``: diffusers' ``DPMSolverMultistepScheduler`` with ``timestep_spacing="leading"``
    and ``steps_offset=1`` (SD v1's scheduler settings).
    """
    if not 0 < num_steps < num_train_timesteps:
        raise ValueError(f"num_steps must be in 1..{num_train_timesteps - 1}, got {num_steps}")
    stride = num_train_timesteps // (num_steps + 1)
    steps = [k * stride + offset for k in range(num_steps, 0, -1)]
    if steps[0] >= num_train_timesteps:
        raise ValueError(f"offset {offset} pushes timestep {steps[0]} past {num_train_timesteps - 1}")
    return steps


# fmt: off
def ddim_sample(
    eps_fn: EpsFn, x: torch.Tensor, schedule: NoiseSchedule, timesteps: Timesteps, *,
    eta: float = 0.0, generator: Generators = None, clip_x0: X0Clip = False,
    alpha_bar_final: float | None = None, callback: StepCallback | None = None, progress: bool = False,
) -> torch.Tensor:
    # fmt: on
    """Run DDIM from ``x`` through the descending ``timesteps`` (any sequence).

    Each step goes to the next timestep of the sequence; the last one goes to
    ``alpha_bar_final``, which defaults to ``alpha_bar[0]`` (the course's and Stable
    Diffusion's convention, diffusers' ``set_alpha_to_one=False``); pass ``1.0`` to end
    exactly at ``x_0``.
    """
    timesteps = _descending(timesteps, "DDIM")
    alpha_bar = schedule.alpha_bar
    prevs = [float(alpha_bar[t]) for t in timesteps[1:]] + [_alpha_bar_final(schedule, alpha_bar_final)]
    for t, alpha_bar_prev in tqdm(
        list(zip(timesteps, prevs, strict=True)), desc="DDIM", disable=not progress, leave=False
    ):
        if callback is not None:
            callback(t, x)
        eps = eps_fn(x, _timestep(t, x))
        noise = _randn_like(x, generator) if eta > 0 else None
        x, _ = ddim_step(x, eps.to(x.dtype), float(alpha_bar[t]), alpha_bar_prev, eta=eta, noise=noise,
                         clip_x0=clip_x0)
    if callback is not None:
        callback(-1, x)
    return x


# fmt: off
def dpmpp_2m_sample(
    eps_fn: EpsFn, x: torch.Tensor, schedule: NoiseSchedule, timesteps: Timesteps, *,
    eta: float = 0.0, generator: Generators = None, clip_x0: X0Clip = False,
    alpha_bar_final: float | None = None, callback: StepCallback | None = None, progress: bool = False,
) -> torch.Tensor:
    # fmt: on
    """DPM-Solver++(2M): the second-order multistep solver of the diffusion ODE in data
    prediction (Lu et al., "DPM-Solver++", 2022, Algorithm 2), deterministic like DDIM with
    ``eta = 0`` but accurate with fewer steps (10-20 instead of 50); with ``eta = 1`` the
    same multistep solver of the diffusion SDE (SDE-DPM-Solver++(2M), the paper's Appendix,
    diffusers' ``algorithm_type="sde-dpmsolver++"``), which adds fresh noise each step and so
    forgets part of the errors earlier steps made, like DDPM but in 25-50 steps.

    With ``alpha_i = sqrt(alpha_bar_i)``, ``sigma_i = sqrt(1 - alpha_bar_i)``,
    ``lambda_i = log(alpha_i / sigma_i)``, each step ``i``:

    1. ``x0_i = (x_i - sigma_i eps) / alpha_i``, clipped
    2. ``h_i = lambda_{i+1} - lambda_i``
    3. ``D_i = x0_i`` on the first and the last step (first order: DDIM's update; the last
       step stays first order for stability with few steps), otherwise
       ``D_i = (1 + 1 / (2 r_i)) x0_i - 1 / (2 r_i) x0_{i-1}`` with ``r_i = h_{i-1} / h_i``
    4. ``x_{i+1} = (sigma_{i+1} / sigma_i) exp(-eta h_i) x_i
       + alpha_{i+1} (1 - exp(-(1 + eta) h_i)) D_i
       + sigma_{i+1} sqrt(1 - exp(-2 eta h_i)) noise``:
       at ``eta = 0`` the exponential integrator of the ODE (Eq. 9 / Algorithm 2), at
       ``eta = 1`` the SDE's, whose first-order step is DDPM's posterior (DDIM with ``eta = 1``)

    The last step goes to ``alpha_bar_final`` as in :func:`ddim_sample` (``1.0``: to ``x_0``
    itself, where the update reduces to ``x0``). ``eta`` between 0 and 1 scales the noise
    as in k-diffusion's ``sample_dpmpp_2m_sde``.
    """
    timesteps = _descending(timesteps, "DPM-Solver")
    alpha_bar = schedule.alpha_bar
    levels = [float(alpha_bar[t]) for t in timesteps] + [_alpha_bar_final(schedule, alpha_bar_final)]
    lam = [0.5 * math.log(a / (1.0 - a)) if a < 1.0 else math.inf for a in levels]
    x0_prev, h_prev = None, None
    for i in tqdm(range(len(timesteps)), desc="DPM++", disable=not progress, leave=False):
        t = timesteps[i]
        if callback is not None:
            callback(t, x)
        eps = eps_fn(x, _timestep(t, x)).to(x.dtype)
        # 1. the predicted x0
        x0 = _predict_x0(x, eps, levels[i], clip_x0)
        alpha_bar_next = levels[i + 1]
        if alpha_bar_next >= 1.0:
            x = x0
            break
        # 2. the step in lambda
        h = lam[i + 1] - lam[i]
        # 3. first or second order
        d = x0
        if x0_prev is not None and i != len(timesteps) - 1:
            r = h_prev / h
            d = (1.0 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
        # 4. the exponential-integrator update, plus the SDE's fresh noise when eta > 0
        sigma_ratio = ((1.0 - alpha_bar_next) / (1.0 - levels[i])) ** 0.5
        x = sigma_ratio * math.exp(-eta * h) * x - alpha_bar_next**0.5 * math.expm1(-(1.0 + eta) * h) * d
        if eta > 0:
            noise_std = (1.0 - alpha_bar_next) ** 0.5 * (-math.expm1(-2.0 * eta * h)) ** 0.5
            x = x + noise_std * _randn_like(x, generator)
        x0_prev, h_prev = x0, h
    if callback is not None:
        callback(-1, x)
    return x


class Capture:
    """A sampler callback that keeps copies of the sample at chosen timesteps.

    ``Capture([999, 800, 600])`` used as ``callback=`` fills ``.states`` with
    ``{t: x_t}`` for those timesteps (the sample entering that step) and
    ``-1`` for the final sample, on the CPU. Pass ``index`` to keep only some
    batch elements (e.g. ``index=[0]`` for the first image).
    """

    def __init__(self, timesteps: Iterable[int], index: Sequence[int] | slice | None = None) -> None:
        self.timesteps = set(int(t) for t in timesteps) | {-1}
        self.index = slice(None) if index is None else index
        self.states: dict[int, torch.Tensor] = {}

    def __call__(self, t: int, x: torch.Tensor) -> None:
        if t in self.timesteps:
            self.states[t] = x[self.index].detach().float().cpu().clone()

    def ordered(self) -> list[tuple[int, torch.Tensor]]:
        """The captured states from the noisiest to the final sample."""
        return sorted(self.states.items(), key=lambda kv: (kv[0] == -1, -kv[0]))
