"""Problem 1's report figures: per-dataset grids and reverse processes, and the DDIM
experiments (eta grid, interpolation) on the digit model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from dlcv.data.digits import DATASETS, NUM_DIGITS, joint_label
from dlcv.diffusion import Capture, NoiseSchedule
from dlcv.diffusion.driver import sampler_timesteps
from dlcv.diffusion.samplers import EpsFn
from dlcv.digits.sampling import DigitModel, Guidance, SampleSettings, guided_eps_fn, sample_labels
from dlcv.figures import FigureJob
from dlcv.io.images import save_grid, to_uint8


def reverse_timesteps(sampler: str, steps: int, schedule: NoiseSchedule, frames: int = 6) -> list[int]:
    """``frames`` timesteps spread over a run, the start noise first and the result (-1) last."""
    visited = sampler_timesteps(sampler, steps, schedule)
    picks = [visited[round(i * (len(visited) - 1) / (frames - 2))] for i in range(frames - 1)]
    return picks + [-1]


def write_report_figures(
    model: DigitModel,
    schedule: NoiseSchedule,
    out_dir: str | Path,
    settings: SampleSettings,
    *,
    seed: int = 0,
    scale: int = 4,
    progress: bool = True,
) -> list[Path]:
    """The report's figures, for each dataset: a 10x10 grid (rows digits 0-9, columns
    different noises) and the reverse process of its first "0" at 6 timesteps, sampled with
    ``settings`` (those ``hw2_1.sh`` uses for the model: eta and guidance included)."""
    out_dir, written = Path(out_dir), []
    frames = reverse_timesteps(settings.sampler, settings.steps, schedule)
    for domain, name in enumerate(DATASETS):
        labels = torch.tensor([joint_label(domain, d) for d in range(NUM_DIGITS)]).repeat_interleave(10)
        capture = Capture(frames, index=[0])
        images = sample_labels(
            model, schedule, labels, **settings.as_kwargs(),
            seed=seed + domain, batch_size=len(labels), callback=capture, progress=progress,
        )  # fmt: skip
        written.append(save_grid(_upscale(images, scale), out_dir / f"{name}_grid.png", nrow=10))
        with torch.no_grad():
            strip = torch.cat([to_uint8(model.decode(x)).cpu() for _, x in capture.ordered()])
        written.append(
            save_grid(_upscale(strip, scale), out_dir / f"{name}_reverse_process.png", nrow=len(strip))
        )
    return written


def _upscale(images: torch.Tensor, scale: int) -> torch.Tensor:
    return images.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3) if scale > 1 else images


def digit_figure_job(
    model: torch.nn.Module,
    schedule: NoiseSchedule,
    labels: Sequence[int],
    interp_label: int,
    guidance: Guidance,
    seed: int = 0,
) -> FigureJob:
    """A :class:`FigureJob` for Problem 1's class-conditional digit model.

    Column ``i`` of the eta grid is conditioned on ``labels[i]``; both
    interpolation strips on ``interp_label``; classifier-free guidance as in
    Problem 1 (:func:`~dlcv.digits.sampling.guided_eps_fn`). The noises are drawn
    on the CPU from ``seed``; the first two are the interpolation's endpoints.
    """
    device = next(model.parameters()).device
    labels_t = torch.as_tensor(list(labels), dtype=torch.long)
    noises = torch.randn(len(labels_t), *model.latent_shape, generator=torch.Generator().manual_seed(seed))

    def grid_eps(index: torch.Tensor) -> EpsFn:
        return guided_eps_fn(model, labels_t[index].to(device), guidance)

    def interp_eps(index: torch.Tensor) -> EpsFn:
        return guided_eps_fn(model, torch.full((len(index),), interp_label, device=device), guidance)

    return FigureJob(
        grid_eps,
        interp_eps,
        noises,
        (noises[0], noises[1]),
        [digit_class_name(v, model.null_class) for v in labels_t.tolist()],
        schedule,
        lambda latents: to_uint8(model.decode(latents)).cpu(),
        clip_x0=model.clamp_x0,
    )


def digit_class_name(label: int, num_classes: int) -> str:
    """``"mnistm 3"`` for the joint label 3 of Problem 1's 20 classes, else ``"class N"``."""
    if num_classes == len(DATASETS) * NUM_DIGITS:
        domain, digit = divmod(label, NUM_DIGITS)
        return f"{DATASETS[domain]} {digit}"
    return f"class {label}"
