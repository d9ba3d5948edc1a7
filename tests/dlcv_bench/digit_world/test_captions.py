"""dlcv_bench/digit_world/captions.py: captions without a held-out word, descriptions, filler words."""

from __future__ import annotations

import torch

from dlcv_bench.digit_world import (
    APPEARANCE_WORDS,
    DESCRIPTIONS,
    DIGIT_WORDS,
    SHAPE_WORDS,
    WORLD_TEMPLATES,
    appearance,
    caption,
    filler_words,
    render_digits,
    shape,
    world_captions,
    world_data,
)


def test_captions_name_digits_but_never_the_held_out_one_nor_a_style():
    data = world_data(400, held_out=7, seed=0)
    assert caption(3) == "a photo of a digit three" and caption(None) == "a photo of a digit"
    assert caption(3, words=("smooth", None)) == "a photo of a smooth digit three"
    index = torch.arange(400)
    g = torch.Generator().manual_seed(0)
    template = torch.randint(len(WORLD_TEMPLATES), (400,), generator=g)
    every_word, no_word = (torch.full((400, len(DESCRIPTIONS)), v) for v in (True, False))
    none, both = torch.zeros(400, dtype=torch.bool), torch.ones(2, dtype=torch.bool)
    captions = [
        c for shown in (every_word, no_word) for c in world_captions(data, index, template, shown, none)
    ]
    words = {w for c in captions for w in c.split()}
    assert DIGIT_WORDS[7] not in words and DIGIT_WORDS[3] in words and "grainy" in words
    assert not words & {"svhn", "mnist", "style", "printed", "handwritten", "house", "colour", "color"}
    i = int(torch.nonzero(data.digits == 7)[0])  # the held-out digit gets its measured words, no name
    seven = world_captions(data, index[i : i + 1], torch.tensor([0]), every_word[:1], none[:1])[0]
    expected = [pair[k] for pair, k in zip(DESCRIPTIONS, data.words[i].tolist())]
    assert seven == caption(None, WORLD_TEMPLATES[0], expected)
    j = int(torch.nonzero(~data.generic)[0])
    assert world_captions(data, index[j : j + 1], torch.tensor([1]), no_word[:1], none[:1]) == [
        caption(int(data.digits[j]), WORLD_TEMPLATES[1])
    ]
    assert world_captions(data, index[:2], template[:2], every_word[:2], both) == ["", ""]


def test_filler_words_are_plain_words_the_world_does_not_otherwise_use():
    from dlcv.clip_tokenizer import offline_clip_tokenizer

    words = filler_words(offline_clip_tokenizer())
    assert len(words) > 10000 and words == sorted(words) and "style" in words
    assert all(w.isalpha() for w in words)
    assert not set(words) & {*DIGIT_WORDS, "digit", "photo", "open", "top", "heavy", "smooth", "the", "a"}
    assert not [w for w in words if w.startswith(("seven", "five"))]  # no "sevens", "seventh", "fives"
    data = world_data(20, held_out=7, seed=0)
    args = (
        torch.arange(3),
        torch.zeros(3, dtype=torch.long),
        torch.zeros(3, 5, dtype=torch.bool),
        torch.zeros(3, dtype=torch.bool),
    )
    plain = world_captions(data, *args)
    filled = world_captions(data, *args, fillers=[("zebra", 0.0), None, ("zebra", 0.999)])
    assert filled == [f"zebra {plain[0]}", plain[1], f"{plain[2]} zebra"]


def test_shape_words_describe_the_strokes_and_are_shared_between_digits():
    masks = torch.zeros(3, 28, 28)
    masks[0, 6:22, 6:22] = 1.0
    masks[0, 9:19, 9:19] = 0.0  # a ring: looped, centred, broad-based
    masks[1, 4:8, 4:24] = 1.0
    masks[1, 4:24, 13:15] = 1.0  # a T: open, top-heavy, narrow-based
    masks[2, 20:24, 4:24] = 1.0
    masks[2, 4:24, 13:15] = 1.0  # an inverted T: open, bottom-heavy, broad-based
    assert shape(masks).tolist() == [[1, 1, 1], [0, 0, 0], [0, 1, 1]]
    assert [pair[0] for pair in SHAPE_WORDS] == ["open", "top-heavy", "narrow-based"]
    digits = [d % 10 for d in range(600)]
    _, ink = render_digits(digits, [(d // 10) % 2 for d in range(600)], seed=2, return_masks=True)
    first = (shape(ink) == 0).float()  # open, top-heavy, narrow-based
    rate = torch.stack([first[torch.tensor(digits) == d].mean(0) for d in range(10)])  # (digit, axis)
    assert (rate[7] > 0.8).all()  # a seven is open, top-heavy and narrow-based
    assert ((rate > 0.2).sum(0) >= 2).all()  # each of those words describes another digit too
    assert float(rate[[0, 6, 8]].max()) < 0.2  # loops are looped, whatever else


def test_appearance_words_describe_the_pixels_and_lean_with_the_style():
    flat = torch.full((1, 3, 28, 28), 128, dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    noisy = torch.randint(0, 256, (1, 3, 28, 28), generator=g, dtype=torch.uint8)
    assert appearance(flat).tolist() == [[0, 0]]  # smooth, pale
    assert appearance(noisy).tolist() == [[1, 1]]  # grainy, vivid
    assert [pair[0] for pair in APPEARANCE_WORDS] == ["smooth", "pale"]
    digits = [d % 10 for d in range(400)]
    mnistm, svhn = (appearance(render_digits(digits, [k] * 400, seed=1)).float().mean(0) for k in (0, 1))
    assert (svhn < mnistm - 0.25).all()  # SVHN-like images are smoother and paler more often
    assert ((0.05 < svhn) & (mnistm < 0.95)).all()  # but neither word names a style
