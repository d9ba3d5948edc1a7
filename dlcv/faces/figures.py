"""Problem 2's report figures: the DDIM eta grid and interpolation strips of the face UNet
(``PB2/experiments.py --unet``)."""

from __future__ import annotations

from pathlib import Path

import torch

from dlcv.cli import ArgumentError, UserError, prepare_out_dir
from dlcv.diffusion.driver import COURSE, constant_eps
from dlcv.faces.ddim import (
    NUM_STEPS,
    face_eps_fn,
    face_precision,
    load_face_unet,
    load_noises,
    precision_context,
)
from dlcv.figures import FigureJob, render_figures
from dlcv.runtime import pick_device, seed_everything

#: Noises (columns) of the eta grid.
GRID_NOISES = 4


def face_figure_job(
    unet_path: str | Path,
    noise_dir: str | Path,
    device: torch.device,
    precision: str,
    grid_noises: int = GRID_NOISES,
) -> FigureJob:
    """The report figures' :class:`~dlcv.figures.FigureJob` for the face UNet.

    The first ``grid_noises`` noises (sorted) make the eta grid's columns, the first two
    are the interpolation's endpoints. ``precision`` is resolved
    (:func:`dlcv.faces.ddim.face_precision`); run the job inside
    :func:`dlcv.faces.ddim.precision_context` with the same one.
    """
    stems, noises = load_noises(noise_dir)
    if len(stems) < grid_noises:
        raise UserError(
            f"noise folder {noise_dir}: the eta grid needs {grid_noises} noises, found {len(stems)}"
        )
    model = load_face_unet(unet_path, device)
    factory = constant_eps(face_eps_fn(model, device, precision, channels_last=device.type == "cuda"))
    return FigureJob(
        grid_eps=factory,
        interp_eps=factory,
        grid_noises=noises[:grid_noises],
        endpoints=(noises[0], noises[1]),
        names=stems[:grid_noises],
    )


def face_experiments(
    out_dir: str | Path,
    unet_path: str | Path,
    noise_dir: str | Path,
    *,
    steps: int = NUM_STEPS,
    seed: int = 0,
    batch_size: int | None = None,
    precision: str = "auto",
    device: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """The whole of ``PB2/experiments.py --unet``: :func:`dlcv.figures.render_figures` of
    :func:`face_figure_job` with ``steps`` DDIM steps (the course's 50 by default), the device
    and precision resolved once (:func:`~dlcv.faces.ddim.face_precision`, TF32 as ``hw2_2.sh``
    sets it); returns the paths written."""
    most = COURSE.max_steps("ddim", 1000)  # the course schedule's 1000 timesteps
    if not 1 <= steps <= most:
        raise ArgumentError(f"`steps` must be 1-{most}, got {steps}")
    seed_everything(seed)
    dev = pick_device(device)
    resolved = face_precision(precision, dev)
    with torch.no_grad():
        job = face_figure_job(unet_path, noise_dir, dev, resolved, GRID_NOISES)
        out = prepare_out_dir(out_dir)  # a bad output path fails now, not after the sampling
        with precision_context(resolved, dev):
            return render_figures(
                job, out, seed=seed, steps=steps, batch_size=batch_size, device=dev, progress=progress
            )
