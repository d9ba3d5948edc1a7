"""Problem 1's report figures: per-dataset grids and reverse processes (``PB1/report.py``), and
the DDIM experiments (eta grid, interpolation) on the digit model (``PB2/experiments.py
--digit-ckpt``). Both jobs load the model through :func:`dlcv.digits.model.load_for_sampling`,
so they sample it with the settings ``hw2_1.sh`` uses for it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from dlcv.cli import ArgumentError, prepare_out_dir
from dlcv.data.digits import DATASETS, NUM_DIGITS, joint_label
from dlcv.diffusion import Capture, NoiseSchedule
from dlcv.diffusion.driver import sampler_timesteps
from dlcv.diffusion.samplers import EpsFn
from dlcv.digits.model import load_for_sampling
from dlcv.digits.sampling import DigitModel, SampleRequest, SampleSettings, guided_eps_fn, sample_labels
from dlcv.figures import FigureJob, render_figures
from dlcv.io.images import save_grid, to_uint8
from dlcv.runtime import cuda_backends, pick_device, seed_everything

#: Noises (columns) of the eta grid.
GRID_NOISES = 4


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
            model,
            schedule,
            labels,
            **settings.as_kwargs(),
            seed=seed + domain,
            batch_size=len(labels),
            callback=capture,
            progress=progress,
        )
        written.append(save_grid(_upscale(images, scale), out_dir / f"{name}_grid.png", nrow=10))
        with torch.no_grad():
            strip = torch.cat([to_uint8(model.decode(x)).cpu() for _, x in capture.ordered()])
        written.append(
            save_grid(_upscale(strip, scale), out_dir / f"{name}_reverse_process.png", nrow=len(strip))
        )
    return written


def report_figures(
    out_dir: str | Path,
    ckpt: str | Path | None = None,
    *,
    request: SampleRequest | None = None,
    scale: int = 4,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """The whole of ``PB1/report.py``: :func:`write_report_figures` for the model ``ckpt`` finds
    (as ``hw2_1.sh`` finds it), sampled with the settings ``hw2_1.sh`` resolves for the same model
    and ``request``; returns the paths written."""
    if scale < 1:
        raise ArgumentError(f"`scale` must be at least 1, got {scale}")
    dev = pick_device(device)
    job = load_for_sampling(ckpt, dev, request)
    out = prepare_out_dir(out_dir, "--out-dir")
    with cuda_backends(dev):
        return write_report_figures(
            job.model, job.schedule, out, job.settings, seed=seed, scale=scale, progress=progress
        )


def _upscale(images: torch.Tensor, scale: int) -> torch.Tensor:
    return images.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3) if scale > 1 else images


def digit_figure_job(
    model: DigitModel,
    schedule: NoiseSchedule,
    labels: Sequence[int],
    interp_label: int,
    settings: SampleSettings,
    seed: int = 0,
) -> FigureJob:
    """A :class:`FigureJob` for Problem 1's class-conditional digit model.

    Column ``i`` of the eta grid is conditioned on ``labels[i]``; both
    interpolation strips on ``interp_label``; classifier-free guidance as ``hw2_1.sh``
    applies it (``settings.guidance`` and ``settings.guidance_interval``, through
    :func:`~dlcv.digits.sampling.guided_eps_fn`). The noises are drawn on the CPU from
    ``seed``; the first two are the interpolation's endpoints.
    """
    device = next(model.parameters()).device
    labels_t = torch.as_tensor(list(labels), dtype=torch.long)
    noises = torch.randn(len(labels_t), *model.latent_shape, generator=torch.Generator().manual_seed(seed))
    guidance, interval = settings.guidance, settings.guidance_interval

    def grid_eps(index: torch.Tensor) -> EpsFn:
        return guided_eps_fn(model, labels_t[index].to(device), guidance, interval=interval)

    def interp_eps(index: torch.Tensor) -> EpsFn:
        labels = torch.full((len(index),), interp_label, device=device)
        return guided_eps_fn(model, labels, guidance, interval=interval)

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


def parse_labels(text: str) -> list[int]:
    """``"0,1,2,3"`` as the eta grid's class labels (one :class:`ArgumentError` line otherwise)."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise ArgumentError(f"`labels`: expected comma-separated integers, got {text!r}") from None


def digit_experiments(
    out_dir: str | Path,
    ckpt: str | Path | None,
    *,
    labels: Sequence[int] = (0, 1, 2, 3),
    interp_label: int = 0,
    request: SampleRequest | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """Problem 2's DDIM experiments on a Problem 1 model (``PB2/experiments.py --digit-ckpt``):
    :func:`dlcv.figures.render_figures` of :func:`digit_figure_job`; returns the paths written.

    The model is sampled as ``hw2_1.sh`` samples it (:func:`~dlcv.digits.model.load_for_sampling`:
    its steps, guidance and guidance interval, or ``request``'s); the sampler is DDIM and eta
    the eta grid's rows (0 for the interpolations), which is what the experiments study.
    """
    seed_everything(seed)
    dev = pick_device(device)
    job = load_for_sampling(ckpt, dev, request)
    classes = job.model.null_class
    if len(labels) != GRID_NOISES or not all(0 <= v < classes for v in labels):
        raise ArgumentError(f"`labels`: expected {GRID_NOISES} class labels in 0..{classes - 1}")
    if not 0 <= interp_label < classes:
        raise ArgumentError(f"`interp_label`: expected a class label in 0..{classes - 1}")
    total, steps = int(job.config["diffusion"]["num_train_timesteps"]), job.settings.steps
    if steps > total:
        raise ArgumentError(f"`steps`: the digit model has {total} training timesteps, got {steps}")
    figures = digit_figure_job(job.model, job.schedule, labels, interp_label, job.settings, seed)
    out = prepare_out_dir(out_dir)  # a bad output path fails now, not after the sampling
    with torch.no_grad(), cuda_backends(dev):
        return render_figures(
            figures, out, seed=seed, steps=steps, batch_size=batch_size, device=dev, progress=progress
        )


def digit_class_name(label: int, num_classes: int) -> str:
    """``"mnistm 3"`` for the joint label 3 of Problem 1's 20 classes, else ``"class N"``."""
    if num_classes == len(DATASETS) * NUM_DIGITS:
        domain, digit = divmod(label, NUM_DIGITS)
        return f"{DATASETS[domain]} {digit}"
    return f"class {label}"
