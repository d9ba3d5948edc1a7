"""Procedural digit shapes: stroke skeletons and an anti-aliased distance-field rasteriser.

A digit shape is a list of polylines in a unit box (x to the right, y downwards,
both in ``[0, 1]``). Three "hands" are defined: ``handwritten`` (several variants
per digit, MNIST-like), ``sans`` (a printed stroke font) and ``segment`` (a
rounded seven-segment font). :func:`skeleton_bank` packs every variant of a hand
into fixed-size segment arrays so that a batch of digits can be jittered and
rasterised with vectorised NumPy.

Rasterisation follows the usual signed-distance approach: a pixel's coverage is
``clip(r - d + 0.5, 0, 1)`` where ``d`` is the distance from the pixel centre to the
nearest stroke segment and ``r`` that segment's half-width (a box-filter
approximation of the exact pixel coverage).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

Polyline = np.ndarray  # (K, 2) points in the unit box
Shape = list[Polyline]

_STEP = 0.07  # resampling step along strokes, in unit-box lengths


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> Polyline:
    """Points on an elliptical arc from angle ``a0`` to ``a1`` (degrees; y points down,
    so increasing angles turn clockwise on screen: 0 right, 90 bottom, 180 left, 270 top)."""
    n = max(2, int(np.ceil(abs(a1 - a0) / 10.0)) + 1)
    t = np.deg2rad(np.linspace(a0, a1, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _pts(*xy: float) -> Polyline:
    return np.asarray(xy, dtype=np.float64).reshape(-1, 2)


def _join(*parts: Polyline) -> Polyline:
    return np.concatenate(parts, axis=0)


def _flip(shape: Shape) -> Shape:
    """Rotate a shape by 180 degrees about the box centre (turns a 6 into a 9)."""
    return [1.0 - p for p in shape]


def _handwritten() -> list[list[Shape]]:
    """MNIST-like skeletons, several variants per digit."""
    d: list[list[Shape]] = [[] for _ in range(10)]
    d[0] = [
        [_arc(0.5, 0.5, 0.42, 0.5, 270, 630)],
        [_arc(0.5, 0.5, 0.4, 0.5, 250, 640)],
    ]
    d[1] = [
        [_pts(0.5, 0.0, 0.5, 1.0)],
        [_pts(0.22, 0.22, 0.52, 0.0, 0.5, 1.0)],
        [_pts(0.25, 0.2, 0.52, 0.0, 0.5, 1.0), _pts(0.22, 1.0, 0.78, 1.0)],
    ]
    d[2] = [
        [_join(_arc(0.5, 0.28, 0.42, 0.28, 195, 380), _pts(0.05, 1.0, 0.98, 1.0))],
        [_join(_arc(0.48, 0.3, 0.4, 0.3, 200, 360), _pts(0.75, 0.6, 0.05, 1.0, 0.45, 0.9, 0.98, 0.98))],
    ]
    d[3] = [
        [_join(_arc(0.46, 0.26, 0.4, 0.26, 205, 450), _arc(0.46, 0.74, 0.46, 0.26, 270, 505))],
        [_join(_pts(0.08, 0.0, 0.9, 0.0, 0.45, 0.4), _arc(0.45, 0.7, 0.45, 0.3, 260, 500))],
    ]
    d[4] = [
        [_pts(0.3, 0.0, 0.05, 0.62, 1.0, 0.62), _pts(0.74, 0.2, 0.72, 1.0)],
        [_pts(0.72, 1.0, 0.72, 0.0, 0.02, 0.66, 1.0, 0.66)],
    ]
    d[5] = [
        [_join(_pts(0.9, 0.0, 0.22, 0.0, 0.16, 0.45), _arc(0.5, 0.68, 0.42, 0.32, 215, 505))],
        [_pts(0.22, 0.0, 0.14, 0.45), _pts(0.22, 0.0, 0.92, 0.0), _arc(0.5, 0.68, 0.42, 0.32, 215, 500)],
    ]
    six_a = [_join(_arc(0.62, 0.55, 0.45, 0.55, 285, 180), _arc(0.52, 0.72, 0.4, 0.28, 180, -180))]
    six_b = [_join(_pts(0.78, 0.0, 0.3, 0.42), _arc(0.5, 0.72, 0.36, 0.28, 200, -160))]
    d[6] = [six_a, six_b]
    d[7] = [
        [_pts(0.0, 0.0, 1.0, 0.0, 0.38, 1.0)],
        [_pts(0.0, 0.0, 1.0, 0.0, 0.4, 1.0), _pts(0.35, 0.5, 0.9, 0.5)],
        [_join(_pts(0.0, 0.04, 0.95, 0.0), _arc(-0.6, 0.05, 1.55, 0.95, 0, 55))],
    ]
    d[8] = [
        [_arc(0.5, 0.25, 0.36, 0.25, 90, 450), _arc(0.5, 0.73, 0.44, 0.27, 270, 630)],
        [_arc(0.52, 0.27, 0.3, 0.27, 90, 450), _arc(0.48, 0.73, 0.46, 0.27, 270, 630)],
    ]
    nine_b = [_arc(0.5, 0.3, 0.42, 0.3, 0, 360), _pts(0.92, 0.3, 0.82, 1.0)]
    d[9] = [_flip(six_a), nine_b]
    return d


def _sans() -> list[list[Shape]]:
    """A printed, geometric stroke font (one shape per digit)."""
    d: list[Shape] = [[] for _ in range(10)]
    d[0] = [_arc(0.5, 0.5, 0.5, 0.5, 0, 360)]
    d[1] = [_pts(0.12, 0.25, 0.6, 0.0, 0.6, 1.0)]
    d[2] = [_join(_arc(0.5, 0.28, 0.46, 0.28, 190, 370), _pts(0.02, 1.0, 1.0, 1.0))]
    d[3] = [_join(_arc(0.48, 0.25, 0.42, 0.25, 200, 450), _arc(0.48, 0.74, 0.5, 0.26, 270, 500))]
    d[4] = [_pts(0.74, 1.0, 0.74, 0.0, 0.0, 0.68, 1.0, 0.68)]
    d[5] = [_join(_pts(0.92, 0.0, 0.15, 0.0, 0.08, 0.46), _arc(0.5, 0.68, 0.48, 0.32, 220, 505))]
    six = [_join(_arc(0.55, 0.5, 0.45, 0.5, 300, 180), _arc(0.5, 0.7, 0.45, 0.3, 180, -180))]
    d[6] = six
    d[7] = [_pts(0.0, 0.0, 1.0, 0.0, 0.35, 1.0)]
    d[8] = [_arc(0.5, 0.25, 0.4, 0.25, 0, 360), _arc(0.5, 0.73, 0.48, 0.27, 0, 360)]
    d[9] = _flip(six)
    return [[s] for s in d]


def _segment() -> list[list[Shape]]:
    """A rounded seven-segment font (as on many house-number plates)."""
    x0, x1, y0, ym, y1 = 0.0, 1.0, 0.0, 0.5, 1.0
    seg = {
        "a": _pts(x0, y0, x1, y0),
        "b": _pts(x1, y0, x1, ym),
        "c": _pts(x1, ym, x1, y1),
        "d": _pts(x0, y1, x1, y1),
        "e": _pts(x0, ym, x0, y1),
        "f": _pts(x0, y0, x0, ym),
        "g": _pts(x0, ym, x1, ym),
    }
    code = ["abcdef", "", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg", "abcdfg"]
    d = [[seg[c] for c in s] for s in code]
    d[1] = [_pts(0.2, 0.18, 0.5, 0.0, 0.5, 1.0)]
    return [[s] for s in d]


HANDS = {"handwritten": _handwritten, "sans": _sans, "segment": _segment}


def _resample(poly: Polyline, step: float) -> Polyline:
    """Resample a polyline so consecutive points are at most ``step`` apart."""
    out = [poly[:1]]
    for a, b in zip(poly[:-1], poly[1:], strict=True):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / step)))
        t = np.arange(1, n + 1)[:, None] / n
        out.append(a + (b - a) * t)
    return np.concatenate(out, axis=0)


@dataclass(frozen=True)
class SkeletonBank:
    """Every variant of one hand packed into padded segment arrays.

    ``a``/``b`` are ``(V, S, 2)`` segment end points in the unit box, ``t`` the
    ``(V, S)`` position of each segment along its shape (0 to 1, for pressure
    variation), ``valid`` marks real segments; ``digit`` maps variants to digits and
    ``variants[d]`` lists the variant indices of digit ``d``.
    """

    a: np.ndarray
    b: np.ndarray
    t: np.ndarray
    valid: np.ndarray
    digit: np.ndarray
    variants: tuple[tuple[int, ...], ...]


@cache
def skeleton_bank(hand: str) -> SkeletonBank:
    """The packed skeletons of ``hand`` (one of :data:`HANDS`), cached."""
    per_digit = HANDS[hand]()
    segs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    digit: list[int] = []
    variants: list[tuple[int, ...]] = []
    for d, shapes in enumerate(per_digit):
        ids = []
        for shape in shapes:
            a_parts, b_parts = [], []
            for poly in shape:
                pts = _resample(poly, _STEP)
                a_parts.append(pts[:-1])
                b_parts.append(pts[1:])
            a, b = np.concatenate(a_parts), np.concatenate(b_parts)
            t = np.cumsum(np.linalg.norm(b - a, axis=1))
            segs.append((a, b, t / t[-1]))
            ids.append(len(digit))
            digit.append(d)
        variants.append(tuple(ids))
    s_max = max(len(a) for a, _, _ in segs)
    v = len(segs)
    a_arr = np.zeros((v, s_max, 2))
    b_arr = np.zeros((v, s_max, 2))
    t_arr = np.zeros((v, s_max))
    valid = np.zeros((v, s_max), dtype=bool)
    for i, (a, b, t) in enumerate(segs):
        n = len(a)
        a_arr[i, :n], b_arr[i, :n], t_arr[i, :n], valid[i, :n] = a, b, t, True
        a_arr[i, n:], b_arr[i, n:] = a[-1], b[-1]  # harmless duplicates, masked out below
    return SkeletonBank(a_arr, b_arr, t_arr, valid, np.asarray(digit), tuple(variants))


def pick_variants(bank: SkeletonBank, digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random variant index of ``bank`` per digit."""
    u = rng.random(len(digits))
    out = np.empty(len(digits), dtype=np.int64)
    for i, (d, x) in enumerate(zip(digits, u, strict=True)):
        ids = bank.variants[int(d)]
        out[i] = ids[int(x * len(ids))]
    return out


def rasterize(a: np.ndarray, b: np.ndarray, radius: np.ndarray, size: int, chunk: int = 64) -> np.ndarray:
    """Anti-aliased coverage ``(N, size, size)`` in ``[0, 1]`` of thick segments.

    ``a``, ``b``: ``(N, S, 2)`` segment end points in pixel units (x, y; pixel ``j``
    spans ``[j, j + 1)``); ``radius``: ``(N, S)`` half-widths in pixels (use a
    negative value to disable a segment).
    """
    n = a.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    px, py = xs.reshape(1, 1, -1), ys.reshape(1, 1, -1)
    out = np.empty((n, size * size), dtype=np.float32)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        ax, ay = a[lo:hi, :, 0:1].astype(np.float32), a[lo:hi, :, 1:2].astype(np.float32)
        dx = b[lo:hi, :, 0:1].astype(np.float32) - ax
        dy = b[lo:hi, :, 1:2].astype(np.float32) - ay
        inv_len2 = 1.0 / np.maximum(dx * dx + dy * dy, 1e-12)
        qx = px - ax  # (c, S, P)
        qy = py - ay
        t = qx * dx
        t += qy * dy
        t *= inv_len2
        np.clip(t, 0.0, 1.0, out=t)
        qx -= t * dx
        qy -= t * dy
        qx *= qx
        qy *= qy
        qx += qy
        np.sqrt(qx, out=qx)
        r = radius[lo:hi, :, None].astype(np.float32)
        np.subtract(r, qx, out=qx)
        out[lo:hi] = qx.max(axis=1)
    out += 0.5
    np.clip(out, 0.0, 1.0, out=out)
    return out.reshape(n, size, size)
