"""The one batched sampling driver: a stack of initial noises in, a stack of samples out.

Every job that samples runs through :func:`sample_batches` (or :func:`iter_sample_batches`, its
batch-by-batch form): Problem 1's digits (``hw2_1.sh``, the report figures), Problem 2's faces
(``hw2_2.sh``) and the DDIM experiments (eta grid, interpolation), and Problem 3's Stable
Diffusion (``hw2_3.sh``, Textual Inversion's validation images). The model is seen through an
*eps factory*: ``make_eps_fn(index)`` returns the ``eps_fn(x_t, t)`` for a batch whose rows are
the items ``index`` (a CPU long tensor) of the job. An unconditional model ignores ``index``
(:func:`constant_eps`); a class-conditional one binds those items' labels; Stable Diffusion
binds its prompt's and the unconditional prompt's text embeddings.

One name, one algorithm: ``"ddim"`` is DDIM (Song et al., 2021), ``"dpm++"`` DPM-Solver++(2M)
(Lu et al., 2022), both with ``eta`` (0: the deterministic ODE solver; > 0: fresh noise each
step, SDE-DPM-Solver++(2M) for ``"dpm++"``), ``"ddpm"`` DDPM's ancestral sampler over every
timestep. Which timesteps a spaced sampler visits and where its last step ends belong to the
*model*, as in diffusers' scheduler configs (``timestep_spacing``, ``steps_offset``,
``set_alpha_to_one``, ``final_sigmas_type``): a :class:`TimestepConvention`, passed as
``convention``. :data:`COURSE` (the default: the digits and the faces) puts both samplers on
DDIM's timesteps ``k * (T // steps) + 1`` and ends at ``alpha_bar[0]``; :data:`SD_V1` (Stable
Diffusion v1's published scheduler settings) keeps DDIM so and gives DPM-Solver++ diffusers'
"leading" timesteps of stride ``T // (steps + 1)`` with a last step to ``x_0`` itself
(``alpha_bar_final = 1``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from dlcv.diffusion.samplers import (
    EpsFn,
    StepCallback,
    X0Clip,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    dpm_solver_timesteps,
    dpmpp_2m_sample,
)
from dlcv.diffusion.schedule import NoiseSchedule

EpsFactory = Callable[[torch.Tensor], EpsFn]
SAMPLERS = ("ddim", "dpm++", "ddpm")


def constant_eps(eps_fn: EpsFn) -> EpsFactory:
    """The factory of an unconditional model: every batch gets the same ``eps_fn``."""
    return lambda index: eps_fn


@dataclass(frozen=True)
class TimestepConvention:
    """Where a model's spaced samplers (DDIM, DPM-Solver++) put their timesteps and where their last
    step ends: a property of the model's published sampling setup, not of the sampler's name.

    ``dpm_solver_spacing``: DPM-Solver++ visits :func:`~dlcv.diffusion.dpm_solver_timesteps`
    (stride ``T // (steps + 1)``, diffusers' ``DPMSolverMultistepScheduler`` with "leading" spacing)
    instead of DDIM's :func:`~dlcv.diffusion.ddim_timesteps` (stride ``T // steps``).
    ``dpm_solver_to_x0``: its last step goes to ``x_0`` itself (``alpha_bar_final = 1``, diffusers'
    ``final_sigmas_type="zero"``) instead of ``alpha_bar[0]``. DDIM always visits
    ``k * (T // steps) + offset`` and ends at ``alpha_bar[0]`` (``set_alpha_to_one=False``).
    """

    name: str
    dpm_solver_spacing: bool = False
    dpm_solver_to_x0: bool = False
    offset: int = 1  # diffusers' steps_offset

    def timesteps(self, sampler: str, steps: int, num_train_timesteps: int) -> list[int]:
        """The timesteps ``sampler`` visits in ``steps`` steps (every one for DDPM), descending."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if sampler == "ddpm":
            return list(range(num_train_timesteps - 1, -1, -1))
        if sampler == "dpm++" and self.dpm_solver_spacing:
            return dpm_solver_timesteps(steps, num_train_timesteps, offset=self.offset)
        return ddim_timesteps(steps, num_train_timesteps, offset=self.offset)

    def max_steps(self, sampler: str, num_train_timesteps: int) -> int:
        """The most steps ``sampler`` can take on ``num_train_timesteps`` timesteps: with stride 1 the
        offset pushes the top timestep to ``T - 1`` at ``T - offset`` DDIM steps (one fewer for
        DPM-Solver++'s spacing, whose stride divides by ``steps + 1``); DDPM walks all ``T``."""
        if sampler == "ddpm":
            return num_train_timesteps
        if sampler == "dpm++" and self.dpm_solver_spacing:
            return num_train_timesteps - 1 - self.offset
        return num_train_timesteps - self.offset

    def alpha_bar_final(self, sampler: str) -> float | None:
        """Where ``sampler``'s last step goes: ``None`` is ``alpha_bar[0]``, ``1.0`` is ``x_0`` itself."""
        return 1.0 if sampler == "dpm++" and self.dpm_solver_to_x0 else None


#: The samplers that visit spaced timesteps, by name (same arguments); DDPM walks every timestep.
SPACED_SAMPLERS = {"ddim": ddim_sample, "dpm++": dpmpp_2m_sample}

#: The course's convention (Problems 1 and 2): DDIM's timesteps ``981, 961, ..., 1`` for 50 steps
#: for DDIM and DPM-Solver++ alike, the last step to ``alpha_bar[0]``.
COURSE = TimestepConvention("course")
#: Stable Diffusion v1's scheduler settings: DDIM as the course; DPM-Solver++ on ``941, 894, ..., 48``
#: for 20 steps, its last step straight to ``x_0`` (the images of diffusers' SD pipelines).
SD_V1 = TimestepConvention("sd-v1", dpm_solver_spacing=True, dpm_solver_to_x0=True)


def sampler_timesteps(
    sampler: str, steps: int, schedule: NoiseSchedule, convention: TimestepConvention = COURSE
) -> list[int]:
    """The timesteps a sampler visits under ``convention``: ``steps`` spaced ones for DDIM and
    DPM-Solver++, all for DDPM."""
    return convention.timesteps(sampler, steps, schedule.num_train_timesteps)


def is_stochastic(sampler: str, eta: float) -> bool:
    """Whether the sampler draws fresh noise on its way (DDPM; DDIM and DPM-Solver++ with ``eta > 0``)."""
    return sampler == "ddpm" or eta > 0


def _pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` with copies of its last row appended up to a multiple of ``multiple`` rows."""
    extra = (-len(x)) % multiple
    return torch.cat([x, x[-1:].expand(extra, *x.shape[1:])]) if extra else x


@torch.no_grad()
def iter_sample_batches(
    make_eps_fn: EpsFactory,
    noises: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    clip_x0: X0Clip = True,
    convention: TimestepConvention = COURSE,
    batch_size: int | None = None,
    batch_multiple: int = 1,
    image_seeds: Sequence[int] | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Denoise every noise in ``noises`` ``(N, ...)`` with ``sampler``; yield, batch by batch,
    ``(index of the batch's first item, decode of the batch on the CPU)`` (``decode`` defaults to
    the float samples). :func:`sample_batches` concatenates them.

    * ``sampler`` visits the timesteps of ``convention`` (:class:`TimestepConvention`; the
      module docstring), with ``eta`` for DDIM and DPM-Solver++ alike.
    * Items run ``batch_size`` at a time (all at once by default), rounded up to a whole
      multiple of ``batch_multiple``; a short batch is padded with copies of its last item,
      dropped afterwards (:data:`dlcv.digits.sampling.BATCH_MULTIPLE` says why).
    * The fresh noise of a stochastic sampler (:func:`is_stochastic`) comes from one CPU
      generator per item, seeded with ``image_seeds`` (default: drawn from ``seed``), so an
      item's sample does not depend on the batch it runs in.
    * ``channels_last`` lays 4-D batches out channels-last (faster convolutions).
    * ``callback`` sees the first batch only (its real items); ``progress`` shows one bar
      over all batches and steps.
    """
    timesteps = sampler_timesteps(sampler, steps, schedule, convention)
    alpha_bar_final = convention.alpha_bar_final(sampler)
    n = len(noises)
    if is_stochastic(sampler, eta) and image_seeds is None:
        image_seeds = torch.randint(2**62, (n,), generator=torch.Generator().manual_seed(seed)).tolist()
    seeds = list(image_seeds) if is_stochastic(sampler, eta) else []
    size = n if not batch_size else max(1, min(batch_size, n))
    size = -(-size // batch_multiple) * batch_multiple
    starts = range(0, n, size)
    bar = tqdm(
        total=len(starts) * len(timesteps),
        desc=f"{sampler.upper()} x{n}",
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        for start in starts:
            index = torch.arange(start, min(start + size, n))
            count = len(index)
            x = _pad(noises[start : start + count], batch_multiple).to(device=device, dtype=torch.float32)
            if channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            batch_seeds = seeds[start : start + count]
            batch_seeds += batch_seeds[-1:] * (len(x) - count)  # the padding's noise: its last item's
            generators = [torch.Generator().manual_seed(s) for s in batch_seeds]
            eps_fn = make_eps_fn(_pad(index, batch_multiple))
            hook = callback if start == 0 else None

            def step(t: int, x_t: torch.Tensor, hook: StepCallback | None = hook, count: int = count) -> None:
                if hook is not None:
                    hook(t, x_t[:count])
                if t >= 0:
                    bar.update(1)

            if sampler in SPACED_SAMPLERS:
                x = SPACED_SAMPLERS[sampler](
                    eps_fn,
                    x,
                    schedule,
                    timesteps,
                    eta=eta,
                    clip_x0=clip_x0,
                    generator=generators or None,
                    alpha_bar_final=alpha_bar_final,
                    callback=step,
                )
            else:
                x = ddpm_sample(
                    eps_fn, x, schedule, generator=generators or None, clip_x0=clip_x0, callback=step
                )
            x = x[:count]
            yield start, (decode(x) if decode is not None else x.float()).cpu()
    finally:
        bar.close()


def sample_batches(
    make_eps_fn: EpsFactory, noises: torch.Tensor, schedule: NoiseSchedule, **options: object
) -> torch.Tensor:
    """Every sample of :func:`iter_sample_batches` (same keyword options), concatenated on the CPU."""
    return torch.cat([batch for _, batch in iter_sample_batches(make_eps_fn, noises, schedule, **options)])
