"""The course's CLIP scores for Problem 3 (Textual Inversion) and its pass rule.

For the 25 images generated for one prompt:

* image score of an image = 100 x cosine similarity of its CLIP image embedding with each
  reference image of the concept, averaged over the references;
* text score of an image = CLIP's ``logits_per_image`` against the evaluation prompt,
  i.e. ``exp(logit_scale) x`` cosine similarity (100 for OpenAI's CLIP);
* the images are ranked by ``image + 2.5 x text``; the top 5 are kept and their image
  and text scores averaged;
* the prompt passes when both averages reach the baseline ``[image, text]``.

The rule itself (:func:`select_top_k`, :func:`passes`) works on score arrays only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

IMAGES_PER_PROMPT = 25
TEXT_WEIGHT = 2.5
TOP_K = 5


@dataclass(frozen=True)
class Selection:
    """The images kept by the rule (best first) and the averages of their scores."""

    indices: list[int]
    image_score: float
    text_score: float


def image_scores(features: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """``(N,)``: 100 x cosine similarity of each unit-norm image with each reference, averaged."""
    return 100.0 * (features.float() @ references.float().t()).mean(dim=1)


def text_scores(features: torch.Tensor, text: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """``(N,)``: ``logits_per_image`` of each unit-norm image against one unit-norm text embedding."""
    return logit_scale * (features.float() @ text.float().reshape(-1))


def select_top_k(
    image: torch.Tensor | Sequence[float],
    text: torch.Tensor | Sequence[float],
    text_weight: float = TEXT_WEIGHT,
    k: int = TOP_K,
) -> Selection:
    """Rank by ``image + text_weight * text``, keep the top ``k``, average their two scores.

    Ties keep the earlier image first (stable sort).
    """
    image = torch.as_tensor(image, dtype=torch.float64).reshape(-1)
    text = torch.as_tensor(text, dtype=torch.float64).reshape(-1)
    if image.shape != text.shape:
        raise ValueError(f"score arrays differ in length: {image.numel()} vs {text.numel()}")
    if not 0 < k <= image.numel():
        raise ValueError(f"cannot keep the top {k} of {image.numel()} images")
    order = torch.sort(image + text_weight * text, descending=True, stable=True).indices[:k]
    return Selection(order.tolist(), float(image[order].mean()), float(text[order].mean()))


def passes(image_score: float, text_score: float, baseline: Sequence[float]) -> bool:
    """The course's pass rule: both averages reach their baseline ``[image, text]``."""
    return image_score >= baseline[0] and text_score >= baseline[1]
