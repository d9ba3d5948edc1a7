"""The report's DDIM figures over any noise-prediction model, and labelled image panels.

The experiments are the report's: the DDIM ``eta`` study (Song et al., "Denoising Diffusion
Implicit Models", 2021, Sec. 4 / Eq. 16) and interpolation between two initial noises with
slerp or lerp (ibid., Sec. 5.3 / Fig. 6). The model is seen through an eps factory
(:data:`dlcv.diffusion.driver.EpsFactory`) and sampled by the one batched driver,
:func:`dlcv.diffusion.driver.sample_batches`, so the face UNet (Problem 2, in
:mod:`dlcv.faces.figures`) and the digit model (Problem 1, in :mod:`dlcv.digits.figures`)
run through the same code. Nothing here is specific to a problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont

from dlcv.diffusion import NoiseSchedule, lerp, slerp
from dlcv.diffusion.driver import EpsFactory, sample_batches
from dlcv.diffusion.samplers import X0Clip
from dlcv.io.images import make_grid, minmax_to_uint8, save_image

ToImage = Callable[[torch.Tensor], torch.Tensor]

ETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
ALPHAS = tuple(round(0.1 * k, 1) for k in range(11))
INTERPOLATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "slerp": slerp,
    "lerp": lerp,
}


def eta_grid(
    make_eps_fn: EpsFactory,
    noises: torch.Tensor,
    schedule: NoiseSchedule | None = None,
    etas: Sequence[float] = ETAS,
    *,
    seed: int = 0,
    to_image: ToImage = minmax_to_uint8,
    **ddim: Any,
) -> torch.Tensor:
    """DDIM of the same ``noises`` under each ``eta``: uint8 ``(len(etas), N, C, H, W)``.

    Every row reuses the generator seed, so rows differ only by ``eta`` (the
    scale of the injected noise), not by a new draw.
    """
    schedule = schedule or NoiseSchedule.linear()
    rows = [sample_batches(make_eps_fn, noises, schedule, eta=eta, seed=seed, **ddim) for eta in etas]
    return torch.stack([to_image(row) for row in rows])


def interpolation_noises(
    x0: torch.Tensor, x1: torch.Tensor, alphas: Sequence[float] = ALPHAS, method: str = "slerp"
) -> torch.Tensor:
    """``method(x0, x1, alpha)`` for each alpha, stacked: ``(len(alphas), *x0.shape)``."""
    try:
        mix = INTERPOLATIONS[method]
    except KeyError:
        choices = ", ".join(INTERPOLATIONS)
        raise ValueError(f"unknown interpolation {method!r}; choose from {choices}") from None
    return torch.stack([mix(x0, x1, float(a)) for a in alphas])


def interpolation_strip(
    make_eps_fn: EpsFactory,
    x0: torch.Tensor,
    x1: torch.Tensor,
    schedule: NoiseSchedule | None = None,
    alphas: Sequence[float] = ALPHAS,
    method: str = "slerp",
    *,
    to_image: ToImage = minmax_to_uint8,
    **ddim: Any,
) -> torch.Tensor:
    """Deterministic DDIM (eta 0) of the noises between ``x0`` and ``x1`` ``(C, H, W)``: uint8
    ``(len(alphas), C, H, W)``."""
    noises = interpolation_noises(x0, x1, alphas, method)
    return to_image(sample_batches(make_eps_fn, noises, schedule or NoiseSchedule.linear(), eta=0.0, **ddim))


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def labeled_grid(
    images: torch.Tensor,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    *,
    min_cell: int = 64,
    padding: int = 2,
) -> Image.Image:
    """Tile uint8 ``(R, C, ch, H, W)`` into one RGB picture with row and column labels.

    Cells smaller than ``min_cell`` pixels are enlarged by an integer factor
    (nearest neighbour) so labels stay legible next to 28x28 digits.
    """
    rows, cols, _, h, w = images.shape
    scale = max(1, -(-min_cell // min(h, w)))
    flat = images.reshape(rows * cols, *images.shape[2:])
    if scale > 1:
        flat = flat.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    if flat.shape[1] == 1:
        flat = flat.expand(-1, 3, -1, -1)
    grid = Image.fromarray(make_grid(flat, cols, padding).permute(1, 2, 0).contiguous().numpy())
    font = _font()
    probe = ImageDraw.Draw(grid)

    def text_size(text: str) -> tuple[int, int]:
        left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    left = max((text_size(s)[0] for s in row_labels), default=0) + 8 if row_labels else 0
    top = max((text_size(s)[1] for s in col_labels), default=0) + 8 if col_labels else 0
    canvas = Image.new("RGB", (grid.width + left, grid.height + top), "white")
    canvas.paste(grid, (left, top))
    draw = ImageDraw.Draw(canvas)
    cell_h, cell_w = h * scale + padding, w * scale + padding
    for r, label in enumerate(row_labels or []):
        tw, th = text_size(label)
        y = top + padding + r * cell_h + (h * scale - th) // 2
        draw.text((left - tw - 4, y), label, fill="black", font=font)
    for c, label in enumerate(col_labels or []):
        tw, _ = text_size(label)
        x = left + padding + c * cell_w + (w * scale - tw) // 2
        draw.text((x, 2), label, fill="black", font=font)
    return canvas


def save_labeled_grid(
    images: torch.Tensor,
    path: str | Path,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    **kwargs: Any,
) -> Path:
    """Write :func:`labeled_grid` as PNG (parent folders created; atomically, as every image)."""
    return save_image(labeled_grid(images, row_labels, col_labels, **kwargs), path, "PNG")


def save_eta_grid(
    images: torch.Tensor,
    path: str | Path,
    etas: Sequence[float] = ETAS,
    names: Sequence[str] | None = None,
) -> Path:
    """The eta study as one figure: rows ``eta = ...``, columns the noises (``names``)."""
    cols = list(names) if names is not None else [str(i) for i in range(images.shape[1])]
    return save_labeled_grid(images, path, [f"eta={e:g}" for e in etas], cols)


def save_interpolation_strip(
    images: torch.Tensor, path: str | Path, alphas: Sequence[float] = ALPHAS, method: str = "slerp"
) -> Path:
    """One interpolation as a labelled strip: a row named ``method``, columns ``alpha``."""
    return save_labeled_grid(images[None], path, [method], [f"{a:g}" for a in alphas])


@dataclass
class FigureJob:
    """What :func:`render_figures` needs from a model: eps factories, noises, a schedule."""

    grid_eps: EpsFactory  # for the eta grid's columns (items of ``grid_noises``)
    interp_eps: EpsFactory  # for the interpolation strips (items are the alphas)
    grid_noises: torch.Tensor  # (N, C, H, W), one column each
    endpoints: tuple[torch.Tensor, torch.Tensor]  # the noises interpolated between, (C, H, W)
    names: list[str]  # column labels of the eta grid
    schedule: NoiseSchedule | None = None  # None: the course's linear schedule
    to_image: ToImage = minmax_to_uint8  # a batch of denoised samples to uint8 images
    clip_x0: X0Clip = True  # keep the predicted x0 in the data's range (see the samplers)


def render_figures(
    job: FigureJob,
    out_dir: str | Path,
    *,
    etas: Sequence[float] = ETAS,
    alphas: Sequence[float] = ALPHAS,
    seed: int = 0,
    **ddim: Any,
) -> list[Path]:
    """Write ``eta_grid.png``, ``interpolation_slerp.png`` and ``interpolation_lerp.png``."""
    out_dir = Path(out_dir)
    ddim = {"clip_x0": job.clip_x0, **ddim}
    grid = eta_grid(
        job.grid_eps, job.grid_noises, job.schedule, etas, seed=seed, to_image=job.to_image, **ddim
    )
    written = [save_eta_grid(grid, out_dir / "eta_grid.png", etas, job.names)]
    x0, x1 = job.endpoints
    for method in INTERPOLATIONS:
        strip = interpolation_strip(
            job.interp_eps, x0, x1, job.schedule, alphas, method, to_image=job.to_image, **ddim
        )
        written.append(
            save_interpolation_strip(strip, out_dir / f"interpolation_{method}.png", alphas, method)
        )
    return written
