"""Problem 2's report figures: the DDIM eta grid and interpolation strips of the face UNet."""

from __future__ import annotations

from pathlib import Path

import torch

from dlcv.cli import UserError
from dlcv.diffusion.driver import constant_eps
from dlcv.faces.ddim import face_eps_fn, load_face_unet, load_noises
from dlcv.figures import FigureJob


def face_figure_job(
    unet_path: str | Path,
    noise_dir: str | Path,
    device: torch.device,
    precision: str,
    grid_noises: int = 4,
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
