"""Image conversion and PNG I/O shared by every problem.

Tensors are ``(C, H, W)`` or ``(N, C, H, W)``; float images live in ``[-1, 1]``
(the diffusion models' range) unless said otherwise, uint8 images in ``[0, 255]``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from dlcv.cli import UserError
from dlcv.io.checkpoint import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
#: Images of more pixels than this are refused unread (a decompression bomb: a small file that
#: would decode to gigabytes). Pillow's own limit, made an error rather than a warning.
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


def to_uint8(x: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Map floats in ``value_range`` to uint8, clamping outside values."""
    lo, hi = value_range
    x = (x.detach().float() - lo) / (hi - lo)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def minmax_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each image of a ``(N, C, H, W)`` batch on its own, then to uint8.

    This is the course's Problem 2 output convention: each image is stretched to
    ``[0, 1]`` by its own minimum and maximum, then written as 8-bit.
    """
    x = x.detach().float()
    flat = x.flatten(1)
    lo = flat.min(dim=1).values.view(-1, 1, 1, 1)
    hi = flat.max(dim=1).values.view(-1, 1, 1, 1)
    return to_uint8((x - lo) / (hi - lo).clamp_min(1e-12), (0.0, 1.0))


def save_image(image: Image.Image, path: str | Path, format: str | None = None) -> Path:
    """Write a PIL image atomically (:func:`dlcv.io.checkpoint.atomic_write`): never a partial
    or zero-byte file under its name, never through a link; a full disk is one
    :class:`UserError` naming ``path``. ``format`` defaults to the one of ``path``'s suffix."""
    path = Path(path)
    kind = format or Image.registered_extensions().get(path.suffix.lower(), "PNG")
    return atomic_write(path, lambda tmp: image.save(tmp, format=kind))


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """Write one uint8 ``(C, H, W)`` (or ``(H, W)``) image as PNG, creating parent folders,
    atomically (:func:`save_image`)."""
    if image.dtype != torch.uint8:
        raise TypeError(f"save_png expects uint8, got {image.dtype}")
    array = image.cpu().numpy()
    if array.ndim == 3:
        array = np.ascontiguousarray(array.transpose(1, 2, 0))
        if array.shape[2] == 1:
            array = array[:, :, 0]
    return save_image(Image.fromarray(array), path, "PNG")


def make_grid(images: torch.Tensor, nrow: int, padding: int = 2, pad_value: int = 255) -> torch.Tensor:
    """Tile a uint8 ``(N, C, H, W)`` batch into one ``(C, H', W')`` image, ``nrow`` per row."""
    n, c, h, w = images.shape
    ncol = nrow
    nrows = (n + ncol - 1) // ncol
    grid = torch.full(
        (c, nrows * (h + padding) + padding, ncol * (w + padding) + padding),
        pad_value,
        dtype=images.dtype,
    )
    for i, img in enumerate(images.cpu()):
        r, col = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = img
    return grid


def save_grid(images: torch.Tensor, path: str | Path, nrow: int, padding: int = 2) -> Path:
    """Save a uint8 batch as one PNG grid with ``nrow`` images per row."""
    return save_png(make_grid(images, nrow, padding), path)


def load_rgb(path: str | Path, size: int | Sequence[int] | None = None) -> torch.Tensor:
    """Read an image file as uint8 ``(3, H, W)``, optionally resized (bicubic) to ``size``.

    Camera photos are turned upright by their EXIF orientation. An unreadable file, and one
    of more than :data:`MAX_IMAGE_PIXELS` pixels (a decompression bomb), raises
    :class:`UserError` naming it.
    """
    try:
        with open_image(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            if size is not None:
                wh = (size, size) if isinstance(size, int) else (size[1], size[0])
                if im.size != wh:
                    im = im.resize(wh, Image.BICUBIC)
            array = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def open_image(path: str | Path) -> Image.Image:
    """``Image.open(path)`` (lazy: nothing decoded yet), refusing an image of more than
    :data:`MAX_IMAGE_PIXELS` pixels with one :class:`UserError` before it is decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(path)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
            found = re.search(r"\((\d+) pixels\)", str(err))
            pixels = int(found.group(1)) if found else None
        else:
            pixels = im.width * im.height
            if pixels <= MAX_IMAGE_PIXELS:
                return im
            im.close()
    size = f" ({pixels:,} pixels)" if pixels else ""
    raise UserError(
        f"cannot read image {path}: it is too large{size}, over {MAX_IMAGE_PIXELS:,} pixels "
        "(a decompression bomb?); use images of a few megapixels"
    )


def list_images(folder: str | Path) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
