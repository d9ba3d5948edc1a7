"""The world's images: procedural digits in both styles (:func:`render_digits`) and its training set
(:func:`world_data`: which images are captioned generically, the words that describe each)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dlcv.data.synthetic_digits import render_mnistm_style, render_svhn_style
from dlcv_bench.digit_world.captions import appearance, shape
from dlcv_bench.digit_world.model import SIZE

STYLES = ("mnistm", "svhn")  # style index 0 = MNIST-M-like, 1 = SVHN-like


def render_digits(
    digits: Sequence[int], styles: Sequence[int], seed: int, return_masks: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """uint8 images ``(N, 3, 28, 28)`` of ``digits`` in ``styles`` (0 MNIST-M-like, 1 SVHN-like);
    with ``return_masks``, also the digits' own ink coverage ``(N, 28, 28)`` in ``[0, 1]``."""
    d = np.asarray(digits, dtype=np.int64)
    s = np.asarray(styles, dtype=np.int64)
    out = np.empty((len(d), SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.zeros((len(d), SIZE, SIZE), dtype=np.float32)
    rng = np.random.default_rng(seed)
    for k, render in enumerate((render_mnistm_style, render_svhn_style)):
        pick = np.flatnonzero(s == k)
        if len(pick):
            out[pick], masks[pick] = render(d[pick], rng, return_masks=True)
    images = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
    return (images, torch.from_numpy(masks)) if return_masks else images


@dataclass
class WorldData:
    """The world's training set: images, digits, styles, which images are captioned generically,
    and the words that describe each."""

    images: torch.Tensor  # uint8 (N, 3, 28, 28)
    digits: torch.Tensor  # long (N,)
    styles: torch.Tensor  # long (N,): 0 MNIST-M-like, 1 SVHN-like
    generic: torch.Tensor  # bool (N,): captioned without the digit's name
    words: torch.Tensor  # long (N, 5): per axis of DESCRIPTIONS, its word (:func:`appearance`, :func:`shape`)


def world_data(n: int, held_out: int, seed: int = 0, generic_fraction: float = 0.5) -> WorldData:
    """``n`` balanced images (digits and styles), the ``held_out`` digit always generic, the others
    generic with probability ``generic_fraction`` (fixed per image, from ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    digits = torch.arange(n) % 10
    digits = digits[torch.randperm(n, generator=g)]
    styles = torch.randperm(n, generator=g) % 2
    generic = (torch.rand(n, generator=g) < generic_fraction) | (digits == held_out)
    images, masks = render_digits(digits.tolist(), styles.tolist(), seed, return_masks=True)
    return WorldData(images, digits, styles, generic, torch.cat([appearance(images), shape(masks)], 1))
