"""A built-in, procedurally generated stand-in for the course's digit data (Problem 1).

It writes exactly the course layout that :mod:`dlcv.data.digits` reads::

    OUT/mnistm/data/00000.png ...   28x28 RGB      OUT/mnistm/train.csv, OUT/mnistm/test.csv
    OUT/svhn/data/00000.png ...     28x28 RGB      OUT/svhn/train.csv,   OUT/svhn/test.csv

* MNIST-M style: handwritten-looking strokes (per-digit skeletons with random
  affine jitter, slant, thickness, pressure and a smooth elastic warp), blended
  into a colourful procedural texture the way MNIST-M was made (Ganin &
  Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015:
  ``out = |patch - digit|``, i.e. the texture is inverted under the stroke).
* SVHN style: printed digits in several fonts (Pillow's bundled Aileron face at
  three weights, a geometric stroke font and a seven-segment font, with varied
  width, slant and weight), varied colours and backgrounds, partially visible
  neighbouring digits at the left/right edges, blur and sensor noise.

The centred digit always stays unambiguous: rotations are small (no 6/9
confusion), neighbours show at most about half of themselves at the edges, and
the luminance contrast between digit and background is bounded from below.
Output is a deterministic function of the seed.

Command line::

    python -m dlcv.data.synthetic_digits --out hw2_data/digits --train 5000 --test 1000
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from dlcv.cli import UserError, run
from dlcv.data._strokes import pick_variants, rasterize, skeleton_bank
from dlcv.data._textures import gaussian_blur, sample_bilinear, smooth_noise
from dlcv.data.digits import DATASETS

SIZE = 28
_LUMA = np.array([0.299, 0.587, 0.114])


def _luma(x: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of ``(..., 3)`` RGB values (element-wise, so bit-reproducible)."""
    return x[..., 0] * _LUMA[0] + x[..., 1] * _LUMA[1] + x[..., 2] * _LUMA[2]


_CHUNK = 512  # images rendered per vectorised batch


def _check_digits(digits: Sequence[int]) -> np.ndarray:
    d = np.asarray(digits, dtype=np.int64).reshape(-1)
    if d.size and (d.min() < 0 or d.max() > 9):
        raise ValueError("digits must lie in 0-9")
    return d


# --------------------------------------------------------------------------- MNIST-M


def _tinted(luma: np.ndarray, sat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colours ``(N, 3)`` of the given luma with a random tint of strength ``sat``."""
    tint = rng.normal(0, 1, (len(luma), 3))
    tint -= _luma(tint)[:, None]
    tint /= np.linalg.norm(tint, axis=1, keepdims=True) + 1e-9
    return luma[:, None] + tint * sat[:, None]


def _elastic(p: np.ndarray, amp: np.ndarray, k: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Smooth displacement of unit-box points ``p`` ``(N, S, 2)``: per axis a sum of two
    random plane waves (``amp`` ``(N, 2, 2)``, wave vectors ``k`` ``(N, 2, 2, 2)``)."""
    arg = (
        p[:, :, None, None, 0] * k[:, None, ..., 0]
        + p[:, :, None, None, 1] * k[:, None, ..., 1]
        + phase[:, None]
    )
    return p + (amp[:, None] * np.sin(arg)).sum(axis=3)


def _handwritten_masks(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Anti-aliased stroke coverage ``(N, 28, 28)`` of handwritten-looking digits."""
    n = len(digits)
    bank = skeleton_bank("handwritten")
    var = pick_variants(bank, digits, rng)
    amp = rng.uniform(0.0, 0.035, (n, 2, 2))
    k = rng.normal(0.0, 1.0, (n, 2, 2, 2))
    k *= (2 * np.pi * rng.uniform(0.3, 0.9, (n, 2, 2)) / np.linalg.norm(k, axis=3))[..., None]
    phase = rng.uniform(0, 2 * np.pi, (n, 2, 2))
    height = rng.uniform(16.5, 21.0, n)
    width = height * rng.uniform(0.55, 0.8, n)
    slant = rng.uniform(-0.1, 0.35, n)
    rot = np.deg2rad(rng.uniform(-12.0, 12.0, n))
    cx = SIZE / 2 + rng.uniform(-1.5, 1.5, n)
    cy = SIZE / 2 + rng.uniform(-1.5, 1.5, n)
    r0 = rng.uniform(0.95, 1.85, n)
    press_f = rng.uniform(0.5, 1.5, n)
    press_p = rng.uniform(0, 2 * np.pi, n)

    def place(p: np.ndarray) -> np.ndarray:
        p = _elastic(p, amp, k, phase) - 0.5
        x = p[..., 0] * width[:, None]
        y = p[..., 1] * height[:, None]
        x = x - slant[:, None] * y
        c, s = np.cos(rot)[:, None], np.sin(rot)[:, None]
        return np.stack([cx[:, None] + c * x - s * y, cy[:, None] + s * x + c * y], axis=-1)

    radius = r0[:, None] * (1 + 0.18 * np.sin(2 * np.pi * press_f[:, None] * bank.t[var] + press_p[:, None]))
    radius = np.where(bank.valid[var], radius, -1.0)
    return rasterize(place(bank.a[var]), place(bank.b[var]), radius, SIZE)


def _luma_guard(p: np.ndarray, side: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """Move each pixel's luma to ``side`` (+1 light, -1 dark) of mid-grey by at least
    ``margin`` (per image), keeping its chroma (scaled down only to stay in 0-255)."""
    luma = _luma(p)
    d = np.clip(side * (luma - 127.5), 0.0, 127.5)
    m = margin[:, None, None]
    target = 127.5 + side * (m + (127.5 - m) * d / 127.5)
    chroma = p - luma[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(chroma > 0, (255.0 - target[..., None]) / chroma, np.inf)
        down = np.where(chroma < 0, target[..., None] / -chroma, np.inf)
    scale = np.clip(np.minimum(up, down).min(axis=3), 0.0, 1.0)
    return target[..., None] + chroma * scale[..., None]


def _mnistm_textures(n: int, rng: np.random.Generator) -> np.ndarray:
    """Colourful textured patches ``(N, 28, 28, 3)`` (float, 0-255), each on one side of
    mid-grey per region so that MNIST-M's inversion always gives a visible digit."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5 - SIZE / 2
    vivid = (rng.random((2, n)) < 0.4)[..., None]  # saturated colours, else photo-like tints
    natural = [_tinted(rng.uniform(0, 255, n), rng.uniform(10, 70, n), rng) for _ in range(2)]
    base1, base2 = np.where(vivid, rng.uniform(0, 255, (2, n, 3)), np.stack(natural))
    ang = rng.uniform(0, 2 * np.pi, n)
    off = rng.uniform(-11, 11, n)
    split = rng.random(n) < 0.35
    dist = xs * np.cos(ang)[:, None, None] + ys * np.sin(ang)[:, None, None] - off[:, None, None]
    w2 = split[:, None, None] / (1 + np.exp(-dist / rng.uniform(0.4, 2.0, n)[:, None, None]))
    base = base1[:, None, None] * (1 - w2[..., None]) + base2[:, None, None] * w2[..., None]

    tex = base + smooth_noise(rng, n, 4, SIZE, 3) * rng.uniform(10, 55, (n, 1, 1, 1))
    tex += smooth_noise(rng, n, 9, SIZE, 3) * rng.uniform(0, 30, (n, 1, 1, 1))
    gdir = rng.uniform(0, 2 * np.pi, n)[:, None, None]
    ramp = (xs * np.cos(gdir) + ys * np.sin(gdir)) / SIZE
    tex += ramp[..., None] * rng.uniform(-60, 60, (n, 1, 1, 3))
    sdir = rng.uniform(0, np.pi, n)[:, None, None]
    period = rng.uniform(2.5, 9.0, n)[:, None, None]
    stripes = np.sin(
        2 * np.pi * (xs * np.cos(sdir) + ys * np.sin(sdir)) / period
        + rng.uniform(0, 2 * np.pi, n)[:, None, None]
    )
    stripe_amp = rng.uniform(10, 40, (n, 1, 1, 3)) * (rng.random(n) < 0.3)[:, None, None, None]
    tex += stripes[..., None] * stripe_amp
    tex += rng.normal(0, 1, (n, SIZE, SIZE, 3)) * rng.uniform(0, 10, (n, 1, 1, 1))

    side = np.where(_luma(base) >= 127.5, 1.0, -1.0)
    return _luma_guard(tex, side, rng.uniform(38, 60, n))


def render_mnistm_style(
    digits: Sequence[int], rng: np.random.Generator, return_masks: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """MNIST-M-like images ``(N, 28, 28, 3)`` uint8 of the given digits (and, with
    ``return_masks``, the digits' stroke coverage ``(N, 28, 28)`` in ``[0, 1]``).

    A procedural handwritten digit ``m`` in ``[0, 1]`` is blended into a texture ``T`` as
    ``|T - 255 m|`` (the MNIST-M recipe of Ganin & Lempitsky, 2015).
    """
    d = _check_digits(digits)
    out = np.empty((len(d), SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.empty((len(d), SIZE, SIZE), dtype=np.float32)
    for lo in range(0, len(d), _CHUNK):
        part = d[lo : lo + _CHUNK]
        mask = _handwritten_masks(part, rng).astype(np.float64)
        masks[lo : lo + len(part)] = mask
        tex = _mnistm_textures(len(part), rng)
        img = np.abs(tex - 255.0 * mask[..., None])
        img += rng.normal(0, 1, img.shape) * rng.uniform(0, 4, (len(part), 1, 1, 1))
        out[lo : lo + len(part)] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return (out, masks) if return_masks else out


# --------------------------------------------------------------------------- SVHN

_GLYPH_CELL = 80  # bank cell size (pixels)
_GLYPH_HEIGHT = 44  # approximate glyph height inside a cell


def _crop_into_cell(mask: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Centre the ink of ``mask`` in a zero-bordered cell; return it with its ink height/width."""
    ys, xs = np.nonzero(mask > 0.02)
    ink = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = ink.shape
    cell = np.zeros((_GLYPH_CELL, _GLYPH_CELL), dtype=np.float32)
    top, left = (_GLYPH_CELL - h) // 2, (_GLYPH_CELL - w) // 2
    cell[top : top + h, left : left + w] = ink
    return cell, h, w


def _pillow_glyphs(stroke: int) -> list[np.ndarray]:
    """Pillow's bundled default TrueType face (Aileron), digits 0-9, emboldened by ``stroke``."""
    font = ImageFont.load_default(size=58)
    out = []
    for d in range(10):
        im = Image.new("L", (_GLYPH_CELL, _GLYPH_CELL), 0)
        ImageDraw.Draw(im).text(
            (_GLYPH_CELL // 2, _GLYPH_CELL // 2),
            str(d),
            font=font,
            fill=255,
            anchor="mm",
            stroke_width=stroke,
            stroke_fill=255,
        )
        out.append(np.asarray(im, dtype=np.float32) / 255.0)
    return out


def _stroke_glyphs(hand: str, radius: float, aspect: float) -> list[np.ndarray]:
    """Digits 0-9 of a procedural stroke font, rasterised at bank resolution."""
    bank = skeleton_bank(hand)
    var = np.array([bank.variants[d][0] for d in range(10)])
    h, w = _GLYPH_HEIGHT - 2 * radius, (_GLYPH_HEIGHT - 2 * radius) * aspect
    c = _GLYPH_CELL / 2

    def place(p: np.ndarray) -> np.ndarray:
        return np.stack([c + (p[..., 0] - 0.5) * w, c + (p[..., 1] - 0.5) * h], axis=-1)

    r = np.where(bank.valid[var], radius, -1.0)
    masks = rasterize(place(bank.a[var]), place(bank.b[var]), r, _GLYPH_CELL)
    return list(masks)


@cache
def _glyph_bank() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All SVHN fonts as one bank: ``(bank (F*10+1, C, C), ink height, ink width, font
    probabilities)``; glyph ``f * 10 + d`` is digit ``d`` of font ``f``, the last one blank."""
    fonts = [
        (_pillow_glyphs(0), 0.14),
        (_pillow_glyphs(2), 0.14),
        (_pillow_glyphs(4), 0.12),
        (_stroke_glyphs("sans", 2.4, 0.58), 0.12),
        (_stroke_glyphs("sans", 3.6, 0.6), 0.12),
        (_stroke_glyphs("sans", 4.8, 0.66), 0.1),
        (_stroke_glyphs("segment", 2.6, 0.55), 0.1),
        (_stroke_glyphs("segment", 4.0, 0.6), 0.08),
        (_stroke_glyphs("handwritten", 3.2, 0.62), 0.08),
    ]
    cells, hs, ws = [], [], []
    for glyphs, _ in fonts:
        for g in glyphs:
            cell, h, w = _crop_into_cell(g)
            cells.append(cell)
            hs.append(h)
            ws.append(w)
    cells.append(np.zeros((_GLYPH_CELL, _GLYPH_CELL), dtype=np.float32))
    hs.append(1)
    ws.append(0)
    p = np.array([q for _, q in fonts])
    return np.stack(cells), np.array(hs, float), np.array(ws, float), p / p.sum()


def _svhn_masks(digits: np.ndarray, rng: np.random.Generator, ss: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Coverage ``(N, 28, 28)`` of a centred printed digit with partial neighbours, and of the
    centred digit alone."""
    n = len(digits)
    bank, gh, gw, font_p = _glyph_bank()
    blank = len(bank) - 1
    font = rng.choice(len(font_p), n, p=font_p)
    height = rng.uniform(15.0, 22.0, n)
    wf = rng.uniform(0.8, 1.3, n)
    shear = rng.uniform(-0.22, 0.22, n)
    rot = np.deg2rad(rng.uniform(-6.0, 6.0, n))
    cx = SIZE / 2 + rng.uniform(-1.0, 1.0, n)
    cy = SIZE / 2 + rng.uniform(-1.0, 1.0, n)
    has = rng.random((2, n)) < 0.6
    nd = rng.integers(0, 10, (2, n))
    gap = rng.uniform(0.8, 4.0, (2, n))

    g_main = font * 10 + digits
    g_nb = np.where(has, font * 10 + nd, blank)
    width = gw / gh  # ink width per unit height

    def out_w(g: np.ndarray) -> np.ndarray:
        return width[g] * height * wf

    mw, lw, rw = out_w(g_main), out_w(g_nb[0]), out_w(g_nb[1])
    show = np.minimum(rng.uniform(0.2, 0.5, (2, n)) * np.stack([lw, rw]), 5.0)  # visible part
    left_edge = np.minimum(cx - mw / 2 - gap[0], show[0])
    right_edge = np.maximum(cx + mw / 2 + gap[1], SIZE - show[1])
    offsets = np.stack([np.zeros(n), left_edge - lw / 2 - cx, right_edge + rw / 2 - cx])
    glyphs = np.stack([g_main, g_nb[0], g_nb[1]])

    grid = (np.arange(SIZE * ss) + 0.5) / ss
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    dx = gx[None] - cx[:, None, None]
    dy = gy[None] - cy[:, None, None]
    c, s = np.cos(rot)[:, None, None], np.sin(rot)[:, None, None]
    lx, ly = c * dx + s * dy, -s * dx + c * dy  # line coordinates (undo the rotation)
    centre = _GLYPH_CELL / 2
    cover = np.zeros_like(lx, dtype=np.float32)
    main = cover
    for i, (off, g) in enumerate(zip(offsets, glyphs, strict=True)):
        u = lx - off[:, None, None] + shear[:, None, None] * ly
        k = (gh[g] / height)[:, None, None]
        bx = centre + u * k / wf[:, None, None]
        by = centre + ly * k
        cover = np.maximum(cover, sample_bilinear(bank, g[:, None, None], by, bx))
        if i == 0:
            main = cover  # the centred digit alone (np.maximum made a new array)
    all_digits, main = (c.reshape(n, SIZE, ss, SIZE, ss).mean(axis=(2, 4)) for c in (cover, main))
    return all_digits, main


def render_svhn_style(
    digits: Sequence[int], rng: np.random.Generator, return_masks: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """SVHN-like images ``(N, 28, 28, 3)`` uint8: a centred printed digit, partially
    visible neighbours, coloured background, blur and noise (and, with ``return_masks``, the
    centred digit's coverage ``(N, 28, 28)`` in ``[0, 1]``, without the neighbours)."""
    d = _check_digits(digits)
    out = np.empty((len(d), SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.empty((len(d), SIZE, SIZE), dtype=np.float32)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) / SIZE - 0.5
    for lo in range(0, len(d), _CHUNK):
        part = d[lo : lo + _CHUNK]
        n = len(part)
        mask, masks[lo : lo + n] = _svhn_masks(part, rng)
        mask = mask.astype(np.float64)[..., None]
        light_on_dark = rng.random(n) < 0.5
        lb = np.where(light_on_dark, rng.uniform(15, 140, n), rng.uniform(115, 245, n))
        contrast = rng.uniform(85, 200, n)
        lf = np.clip(np.where(light_on_dark, lb + contrast, lb - contrast), 5, 250)
        lb = np.where(light_on_dark, np.minimum(lb, lf - 85), np.maximum(lb, lf + 85))
        bg = _tinted(lb, rng.uniform(0, 45, n), rng)[:, None, None]
        fg = _tinted(lf, rng.uniform(0, 60, n), rng)[:, None, None]
        gdir = rng.uniform(0, 2 * np.pi, n)[:, None, None]
        ramp = (xs * np.cos(gdir) + ys * np.sin(gdir))[..., None]
        back = bg + ramp * rng.uniform(-35, 35, (n, 1, 1, 1))
        back = back + smooth_noise(rng, n, 5, SIZE, 3) * rng.uniform(0, 14, (n, 1, 1, 1))
        band = rng.random(n) < 0.2  # the edge of a number plate at the top or bottom
        top = (rng.random(n) < 0.5)[:, None, None]
        band_rows = np.where(
            top,
            ys < rng.uniform(-0.5, -0.38, n)[:, None, None],
            ys > rng.uniform(0.38, 0.5, n)[:, None, None],
        )
        band_col = _tinted(rng.uniform(0, 255, n), rng.uniform(0, 50, n), rng)[:, None, None]
        back = np.where((band[:, None, None] & band_rows)[..., None], band_col, back)
        front = fg + smooth_noise(rng, n, 4, SIZE, 3) * rng.uniform(0, 12, (n, 1, 1, 1))
        img = back * (1 - mask) + front * mask
        img = gaussian_blur(img, rng.uniform(0.0, 0.9, n))
        img += rng.normal(0, 1, img.shape) * rng.uniform(0.5, 6, (n, 1, 1, 1))
        out[lo : lo + n] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return (out, masks) if return_masks else out


# --------------------------------------------------------------------------- writing

RENDERERS = {"mnistm": render_mnistm_style, "svhn": render_svhn_style}


def _balanced_digits(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % 10)


def _write_pngs(images: np.ndarray, paths: list[Path]) -> None:
    def save(i: int) -> None:
        Image.fromarray(images[i]).save(paths[i])

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        list(pool.map(save, range(len(paths))))


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    for name in DATASETS:
        sub = out / name
        if sub.exists() and not sub.is_dir():
            raise UserError(f"{sub} exists and is not a folder")
        if sub.is_dir() and not overwrite and any(sub.iterdir()):
            raise UserError(f"{sub} already exists and is not empty; pass --overwrite to write over it")


def write_synthetic_digits(
    out: str | Path, n_train: int, n_test: int, seed: int = 0, progress: bool = True, overwrite: bool = False
) -> Path:
    """Write the synthetic digits in the course layout under ``out`` and return ``out``.

    ``n_train``/``n_test`` images per dataset (labels balanced, shuffled); train files are
    numbered from 0 and test files continue after them. ``test.csv`` is written only when
    ``n_test > 0``. Existing non-empty ``out/mnistm`` or ``out/svhn`` folders are refused
    unless ``overwrite`` (files are then written over; nothing is deleted).
    """
    if n_train < 1 or n_test < 0:
        raise UserError(f"need at least 1 training and 0 test images, got {n_train}/{n_test}")
    out = Path(out)
    _check_target(out, overwrite)
    width = max(5, len(str(n_train + n_test - 1)))
    for domain, name in enumerate(DATASETS):
        data = out / name / "data"
        data.mkdir(parents=True, exist_ok=True)
        start = 0
        for split_idx, (split, count) in enumerate((("train", n_train), ("test", n_test))):
            if count == 0:
                continue
            rng = np.random.default_rng([seed, domain, split_idx])
            digits = _balanced_digits(count, rng)
            names = [f"{start + i:0{width}d}.png" for i in range(count)]
            bar = tqdm(total=count, desc=f"{name} {split}", unit="img", disable=not progress)
            for lo in range(0, count, _CHUNK):
                hi = min(count, lo + _CHUNK)
                images = RENDERERS[name](digits[lo:hi], rng)
                _write_pngs(images, [data / nm for nm in names[lo:hi]])
                bar.update(hi - lo)
            bar.close()
            with open(out / name / f"{split}.csv", "w", newline="") as f:
                writer = csv.writer(f, lineterminator="\n")
                writer.writerow(["image_name", "label"])
                writer.writerows(zip(names, digits.tolist(), strict=True))
            start += count
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m dlcv.data.synthetic_digits",
        description="Write procedurally generated MNIST-M-like and SVHN-like digits in the "
        "course layout (DIR/mnistm/data/*.png, DIR/mnistm/train.csv, test.csv; same for svhn).",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="folder to write mnistm/ and svhn/ into (e.g. hw2_data/digits)",
    )
    parser.add_argument("--train", type=int, default=5000, help="training images per dataset (default: 5000)")
    parser.add_argument(
        "--test", type=int, default=1000, help="test images per dataset; 0 writes no test.csv (default: 1000)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed; the same seed writes byte-identical files (default: 0)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write over existing non-empty DIR/mnistm or DIR/svhn folders (nothing is deleted)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    out = write_synthetic_digits(
        args.out, args.train, args.test, args.seed, progress=not args.quiet, overwrite=args.overwrite
    )
    for name in DATASETS:
        splits = "train.csv" + (", test.csv" if args.test > 0 else "")
        print(
            f"wrote {args.train} train + {args.test} test images to {out / name}/data "
            f"({splits}), seed {args.seed}"
        )


if __name__ == "__main__":
    run(main)
