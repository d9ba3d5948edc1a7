"""The one batched sampling driver: a stack of initial noises in, a stack of samples out.

Every job that samples runs through :func:`sample_batches`: Problem 1's digits
(``hw2_1.sh``, the report figures), Problem 2's faces (``hw2_2.sh``) and the DDIM
experiments (eta grid, interpolation). The model is seen through an *eps factory*:
``make_eps_fn(index)`` returns the ``eps_fn(x_t, t)`` for a batch whose rows are the items
``index`` (a CPU long tensor) of the job. An unconditional model ignores ``index``
(:func:`constant_eps`); a class-conditional one binds those items' labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from dlcv.diffusion.samplers import (
    EpsFn,
    StepCallback,
    X0Clip,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    dpmpp_2m_sample,
)
from dlcv.diffusion.schedule import NoiseSchedule

EpsFactory = Callable[[torch.Tensor], EpsFn]
SAMPLERS = ("ddim", "dpm++", "ddpm")


def constant_eps(eps_fn: EpsFn) -> EpsFactory:
    """The factory of an unconditional model: every batch gets the same ``eps_fn``."""
    return lambda index: eps_fn


def sampler_timesteps(sampler: str, steps: int, schedule: NoiseSchedule) -> list[int]:
    """The timesteps a sampler visits: ``steps`` spaced ones for DDIM and DPM-Solver++, all for DDPM."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "ddpm":
        return list(range(schedule.num_train_timesteps - 1, -1, -1))
    return ddim_timesteps(steps, schedule.num_train_timesteps)


def is_stochastic(sampler: str, eta: float) -> bool:
    """Whether the sampler draws fresh noise on its way (DDPM; DDIM and DPM-Solver++ with ``eta > 0``)."""
    return sampler == "ddpm" or eta > 0


def _pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` with copies of its last row appended up to a multiple of ``multiple`` rows."""
    extra = (-len(x)) % multiple
    return torch.cat([x, x[-1:].expand(extra, *x.shape[1:])]) if extra else x


@torch.no_grad()
def sample_batches(
    make_eps_fn: EpsFactory,
    noises: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    clip_x0: X0Clip = True,
    batch_size: int | None = None,
    batch_multiple: int = 1,
    image_seeds: Sequence[int] | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
    callback: StepCallback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Denoise every noise in ``noises`` ``(N, ...)`` with ``sampler``; ``decode`` of each
    batch (default: the float samples), concatenated on the CPU.

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
    timesteps = sampler_timesteps(sampler, steps, schedule)
    n = len(noises)
    if is_stochastic(sampler, eta) and image_seeds is None:
        image_seeds = torch.randint(2**62, (n,), generator=torch.Generator().manual_seed(seed)).tolist()
    seeds = list(image_seeds) if is_stochastic(sampler, eta) else []
    size = n if not batch_size else max(1, min(batch_size, n))
    size = -(-size // batch_multiple) * batch_multiple
    starts = range(0, n, size)
    bar = tqdm(total=len(starts) * len(timesteps), desc=f"{sampler.upper()} x{n}", unit="step",
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    out = []
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

        if sampler == "ddim":
            x = ddim_sample(eps_fn, x, schedule, timesteps, eta=eta, clip_x0=clip_x0,
                            generator=generators or None, callback=step)  # fmt: skip
        elif sampler == "dpm++":
            x = dpmpp_2m_sample(eps_fn, x, schedule, timesteps, eta=eta, clip_x0=clip_x0,
                                generator=generators or None, callback=step)  # fmt: skip
        else:
            x = ddpm_sample(eps_fn, x, schedule, generator=generators or None, clip_x0=clip_x0, callback=step)
        x = x[:count]
        out.append((decode(x) if decode is not None else x.float()).cpu())
    bar.close()
    return torch.cat(out)
