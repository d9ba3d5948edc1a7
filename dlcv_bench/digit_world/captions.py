"""The world's caption grammar: the digit names, the templates, the words that describe an image
without naming its style or its digit (its look, :func:`appearance`, and its digit's shape,
:func:`shape`, both measured), the words that say nothing about it (:func:`filler_words`), and the
captions of one training step (:func:`world_captions`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from dlcv.stable_diffusion.ti_data import OBJECT_TEMPLATES

if TYPE_CHECKING:
    from dlcv_bench.digit_world.data import WorldData

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GENERIC_WORD = "digit"
#: Caption templates of the world ("{}" = "digit three", or "digit" in a generic caption).
WORLD_TEMPLATES: tuple[str, ...] = (*OBJECT_TEMPLATES, "{}", "the {}")


#: Appearance words a world caption may carry, measured from the image's pixels (never a style's
#: name): its fine grain and its colourfulness. They describe any image, and each style only
#: leans one way (the SVHN-like renderer draws smooth, pale images more often than the
#: MNIST-M-like one), as a caption in SD's data describes a painting without naming its painter.
APPEARANCE_WORDS: tuple[tuple[str, str], ...] = (("smooth", "grainy"), ("pale", "vivid"))
_GRAIN_SPLIT, _VIVID_SPLIT = 0.04, 0.06  # thresholds of the two measures (in [0, 1] units)


def appearance(images: torch.Tensor) -> torch.Tensor:
    """Which appearance words describe uint8 ``images`` ``(N, 3, H, W)``: ``(N, 2)`` indices into
    :data:`APPEARANCE_WORDS` (grain: the mean absolute difference of the luma from its 3x3 mean,
    above 0.04 is grainy; colour: the mean absolute deviation of the channels from their mean,
    above 0.06 is vivid)."""
    x = images.float() / 255.0
    luma = (x * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True)
    local = nn.functional.avg_pool2d(luma, 3, 1, 1, count_include_pad=False)
    grain = (luma - local).abs().mean((1, 2, 3))
    vivid = (x - x.mean(1, keepdim=True)).abs().mean((1, 2, 3))
    return torch.stack([grain > _GRAIN_SPLIT, vivid > _VIVID_SPLIT], dim=1).long()


#: Shape words a world caption may carry, measured from the digit's own strokes (its ink, not the
#: background nor the neighbours of an SVHN-like digit): whether it encloses a loop, where the
#: weight of its ink sits, and how wide its base is. They describe every digit, the held-out one
#: too, and each is shared by several digits, as SD's captions describe what is in a picture
#: ("a small dog with short legs") without naming it. A held-out seven is open, top-heavy and
#: narrow-based; so are some ones (and, in part, fours and nines).
SHAPE_WORDS: tuple[tuple[str, str], ...] = (
    ("open", "looped"),
    ("top-heavy", "bottom-heavy"),
    ("narrow-based", "broad-based"),
)
_TOP_HEAVY, _NARROW_BASE = 0.42, 0.5  # splits of the ink's centre height and base width (fractions)


def shape(masks: torch.Tensor) -> torch.Tensor:
    """Which shape words describe digits of ink coverage ``masks`` ``(N, H, W)`` in ``[0, 1]``:
    ``(N, 3)`` indices into :data:`SHAPE_WORDS`. Ink is coverage above 0.5. Looped: more than two
    background pixels that no path of background 4-neighbours joins to the border. Top-heavy: the
    ink's centre of mass in the top 42% of its bounding box. Narrow-based: the bottom fifth of the
    box's rows has ink in less than half of its columns."""
    ink = masks > 0.5
    _, h, w = ink.shape
    background = ~ink
    outside = torch.zeros_like(background)
    outside[:, [0, -1], :] = background[:, [0, -1], :]
    outside[:, :, [0, -1]] = background[:, :, [0, -1]]
    while True:  # flood the background from the border
        grown = outside.clone()
        grown[:, 1:] |= outside[:, :-1]
        grown[:, :-1] |= outside[:, 1:]
        grown[:, :, 1:] |= outside[:, :, :-1]
        grown[:, :, :-1] |= outside[:, :, 1:]
        grown &= background
        if torch.equal(grown, outside):
            break
        outside = grown
    looped = (background & ~outside).flatten(1).sum(1) > 2
    rows, cols = torch.arange(h), torch.arange(w)
    has_row, has_col = ink.any(2), ink.any(1)
    top = torch.where(has_row, rows, h).min(1).values
    bottom = torch.where(has_row, rows, -1).max(1).values
    left = torch.where(has_col, cols, w).min(1).values
    right = torch.where(has_col, cols, -1).max(1).values
    height, width = (bottom - top + 1).clamp_min(1), (right - left + 1).clamp_min(1)
    weight = masks.float().sum((1, 2)).clamp_min(1e-6)
    centre = (masks.float() * rows[:, None]).sum((1, 2)) / weight
    top_heavy = (centre - top) / height < _TOP_HEAVY
    base_rows = rows[None] >= (top + 0.8 * height).long()[:, None]
    base = (ink & base_rows[:, :, None]).any(1).sum(1)
    narrow = base / width < _NARROW_BASE
    return torch.stack([looped, ~top_heavy, ~narrow], dim=1).long()


def caption(digit: int | None, template: str = "a photo of a {}", words: Sequence[str | None] = ()) -> str:
    """A world caption: ``digit`` named ("a photo of a digit three"), or generic when None, with
    optional descriptive ``words`` before it ("a photo of a smooth pale open digit three")."""
    name = GENERIC_WORD if digit is None else f"{GENERIC_WORD} {DIGIT_WORDS[digit]}"
    return template.format(" ".join([*(w for w in words if w), name]))


#: Every descriptive axis of a caption, in caption order: the appearance words, then the shape words.
DESCRIPTIONS: tuple[tuple[str, str], ...] = (*APPEARANCE_WORDS, *SHAPE_WORDS)


def filler_words(tokenizer) -> list[str]:
    """Words a world caption may carry that say nothing about its image: every alphabetic whole word
    of the tokenizer's vocabulary (sorted) except the world's own (templates, digit names, the
    descriptions) and those that begin with a digit's name ("sevens", "seventh"). Real captions
    are full of such words; a world that never saw one reads an unknown word (the "style" of
    "the digit five in the style of ...") as if it described the image (measured: fives in 14
    of 50 such images, 44 of 50 from "the digit five in a photo")."""
    own = {GENERIC_WORD, *DIGIT_WORDS, *(w for t in WORLD_TEMPLATES for w in t.replace("{}", " ").split())}
    own |= {part for pair in DESCRIPTIONS for word in pair for part in (word, *word.split("-"))}
    whole = (t[: -len("</w>")] for t in tokenizer.get_vocab() if t.endswith("</w>"))
    return sorted(
        w for w in whole if w.isascii() and w.isalpha() and w not in own and not w.startswith(DIGIT_WORDS)
    )


def world_captions(
    data: WorldData,
    index: torch.Tensor,
    template: torch.Tensor,
    shown: torch.Tensor,
    empty: torch.Tensor,
    fillers: Sequence[tuple[str, float] | None] | None = None,
) -> list[str]:
    """The captions of images ``index`` in one training step: :data:`WORLD_TEMPLATES` ``template``,
    the digit named unless the image is generic, the image's words of the axes ``shown``
    ``(B, 5)`` (:data:`DESCRIPTIONS`), or "" where ``empty``. ``fillers`` (per image: None or a
    word of :func:`filler_words` and where it goes, a fraction of the caption's length)."""
    out = []
    fillers = fillers or [None] * len(index)
    rows = zip(index.tolist(), template.tolist(), shown.tolist(), empty.tolist(), fillers)
    for i, j, axes, blank, filler in rows:
        if blank:
            out.append("")
            continue
        words = [pair[w] for pair, w, on in zip(DESCRIPTIONS, data.words[i].tolist(), axes) if on]
        digit = None if data.generic[i] else int(data.digits[i])
        text = caption(digit, WORLD_TEMPLATES[j], words)
        if filler is not None:
            word, where = filler
            parts = text.split()
            at = min(int(where * (len(parts) + 1)), len(parts))
            text = " ".join([*parts[:at], word, *parts[at:]])
        out.append(text)
    return out
