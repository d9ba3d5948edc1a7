"""Small vectorised NumPy image operations for the synthetic digits: smooth noise,
cubic upsampling, per-image Gaussian blur and bilinear sampling.

Everything is written with element-wise operations and gathers (no BLAS, no
threads), so a given random generator state always yields the same bytes.
"""

from __future__ import annotations

import numpy as np


def _cubic_weights(size: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(size, 4)`` and Keys cubic weights ``(size, 4)`` to upsample ``grid`` -> ``size``
    samples (align-corners convention, border replicated)."""
    pos = np.linspace(0.0, grid - 1.0, size)
    base = np.floor(pos).astype(np.int64)
    frac = pos - base
    idx = np.clip(base[:, None] + np.arange(-1, 3)[None, :], 0, grid - 1)
    d = np.abs(frac[:, None] - np.arange(-1, 3)[None, :])
    a = -0.5
    w = np.where(
        d <= 1,
        (a + 2) * d**3 - (a + 3) * d**2 + 1,
        np.where(d < 2, a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a, 0.0),
    )
    return idx, w


def upsample_cubic(x: np.ndarray, size: int) -> np.ndarray:
    """Cubic upsampling of ``(N, g, g, C)`` grids to ``(N, size, size, C)``."""
    g = x.shape[1]
    idx, w = _cubic_weights(size, g)
    rows = (x[:, idx, :, :] * w[None, :, :, None, None]).sum(axis=2)  # (N, size, g, C)
    return (rows[:, :, idx, :] * w[None, None, :, :, None]).sum(axis=3)


def smooth_noise(rng: np.random.Generator, n: int, grid: int, size: int, channels: int = 1) -> np.ndarray:
    """Band-limited noise ``(N, size, size, channels)`` with values roughly in ``[-1, 1]``:
    uniform noise on a ``grid`` x ``grid`` lattice, cubically upsampled."""
    return upsample_cubic(rng.uniform(-1.0, 1.0, (n, grid, grid, channels)), size)


def gaussian_blur(x: np.ndarray, sigma: np.ndarray, radius: int = 2) -> np.ndarray:
    """Blur ``(N, H, W, C)`` images, each with its own Gaussian ``sigma`` (pixels; 0 = none)."""
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    s = np.maximum(np.asarray(sigma, dtype=np.float64), 1e-3)[:, None]
    w = np.exp(-0.5 * (k[None, :] / s) ** 2)
    w /= w.sum(axis=1, keepdims=True)
    h, wd = x.shape[1], x.shape[2]
    xp = np.pad(x, ((0, 0), (radius, radius), (0, 0), (0, 0)), mode="edge")
    y = sum(w[:, i, None, None, None] * xp[:, i : i + h] for i in range(2 * radius + 1))
    yp = np.pad(y, ((0, 0), (0, 0), (radius, radius), (0, 0)), mode="edge")
    return sum(w[:, i, None, None, None] * yp[:, :, i : i + wd] for i in range(2 * radius + 1))


def sample_bilinear(bank: np.ndarray, index: np.ndarray, by: np.ndarray, bx: np.ndarray) -> np.ndarray:
    """Sample ``bank`` ``(G, Hb, Wb)`` bilinearly at float positions ``(by, bx)`` of glyph
    ``index`` (all of one shape, broadcast together). Positions outside the bank read the
    bank's border, so give the bank a zero border."""
    hb, wb = bank.shape[1], bank.shape[2]
    by = np.clip(by, 0.0, hb - 1.001)
    bx = np.clip(bx, 0.0, wb - 1.001)
    y0 = by.astype(np.int64)
    x0 = bx.astype(np.int64)
    fy = (by - y0).astype(np.float32)
    fx = (bx - x0).astype(np.float32)
    flat = bank.reshape(-1)
    base = index * (hb * wb) + y0 * wb + x0
    v00, v01 = flat[base], flat[base + 1]
    v10, v11 = flat[base + wb], flat[base + wb + 1]
    top = v00 + (v01 - v00) * fx
    bot = v10 + (v11 - v10) * fx
    return top + (bot - top) * fy
