"""A captioned grid of images, drawn with PIL (no plotting library needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from dlcv.clip_eval.preprocess import open_pil
from dlcv.io.images import save_image

GREEN = (20, 130, 40)
RED = (190, 30, 30)


def captioned_grid(
    paths: Sequence[Path],
    captions: Sequence[Sequence[str]],
    colours: Sequence[tuple[int, int, int]],
    out: str | Path,
    ncol: int = 5,
    tile: int = 128,
) -> Path:
    """Write a PNG grid: each image scaled to ``tile`` pixels with its caption lines beneath."""
    font = ImageFont.load_default()
    line_h = 14
    n_lines = max((len(c) for c in captions), default=0)
    cell_w, cell_h = tile + 16, tile + 8 + n_lines * line_h + 8
    nrow = max(1, -(-len(paths) // ncol))
    canvas = Image.new("RGB", (ncol * cell_w, nrow * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (path, lines, colour) in enumerate(zip(paths, captions, colours, strict=True)):
        r, c = divmod(i, ncol)
        x, y = c * cell_w + 8, r * cell_h + 8
        canvas.paste(open_pil(path).resize((tile, tile), Image.BICUBIC), (x, y))
        for j, line in enumerate(lines):
            draw.text((x, y + tile + 4 + j * line_h), line[:24], fill=colour, font=font)
    return save_image(canvas, out)
