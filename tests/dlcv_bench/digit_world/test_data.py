"""dlcv_bench/digit_world/data.py: the world's training set, balanced, the held-out digit never named."""

from __future__ import annotations

import torch

from dlcv_bench.digit_world import DESCRIPTIONS, render_digits, world_data


def test_the_held_out_digit_is_always_generic_and_the_others_about_half_the_time():
    data = world_data(400, held_out=7, seed=0)
    assert data.generic[data.digits == 7].all()
    named = ~data.generic
    assert 0.3 < float(named[data.digits != 7].float().mean()) < 0.7
    assert set(data.styles.tolist()) == {0, 1} and data.images.shape == (400, 3, 28, 28)
    assert data.words.shape == (400, len(DESCRIPTIONS)) and set(data.words.unique().tolist()) == {0, 1}


def test_digits_render_in_both_styles_with_their_ink_masks():
    images, masks = render_digits([1, 7, 3], [0, 1, 0], seed=0, return_masks=True)
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 28, 28)
    assert masks.shape == (3, 28, 28) and 0 <= float(masks.min()) and float(masks.max()) <= 1
    assert torch.equal(images, render_digits([1, 7, 3], [0, 1, 0], seed=0))  # seeded
    assert not torch.equal(images, render_digits([1, 7, 3], [0, 1, 0], seed=1))
