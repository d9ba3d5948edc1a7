"""dlcv.clip_eval.scores: the course's ranking, top-5 and pass rule on known arrays."""

from __future__ import annotations

import pytest
import torch

from dlcv.clip_eval.scores import image_scores, passes, select_top_k, text_scores


def test_rank_by_image_plus_two_and_a_half_text():
    image = [80.0, 70.0, 90.0, 60.0, 75.0, 85.0, 50.0]
    text = [30.0, 36.0, 20.0, 40.0, 25.0, 28.0, 10.0]
    # combined: 155, 160, 140, 160, 137.5, 155, 75 -> ties keep the earlier index first
    chosen = select_top_k(image, text)
    assert chosen.indices == [1, 3, 0, 5, 2]
    assert chosen.image_score == pytest.approx((70 + 60 + 80 + 85 + 90) / 5)
    assert chosen.text_score == pytest.approx((36 + 40 + 30 + 28 + 20) / 5)


def test_text_weight_matters():
    image, text = [100.0, 0.0], [0.0, 39.0]
    assert select_top_k(image, text, k=1).indices == [0]  # 100 > 97.5
    assert select_top_k(image, text, text_weight=3.0, k=1).indices == [1]  # 100 < 117


def test_twenty_five_images_keep_five():
    g = torch.Generator().manual_seed(0)
    image, text = torch.rand(25, generator=g) * 100, torch.rand(25, generator=g) * 40
    chosen = select_top_k(image, text)
    expected = torch.argsort(image + 2.5 * text, descending=True)[:5]
    assert chosen.indices == expected.tolist()
    assert chosen.image_score == pytest.approx(float(image[expected].mean()))
    assert chosen.text_score == pytest.approx(float(text[expected].mean()))


def test_pass_rule_needs_both_averages_to_reach_the_baseline():
    assert passes(79.0, 34.0, [79, 34])  # reaching is enough
    assert passes(90.0, 40.0, [79, 34])
    assert not passes(78.99, 40.0, [79, 34])
    assert not passes(90.0, 33.99, [79, 34])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        select_top_k([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="top 5 of 3"):
        select_top_k([1.0] * 3, [1.0] * 3)


def test_scores_from_unit_features():
    e = torch.eye(3)
    features = torch.stack([e[0], (e[0] + e[1]) / 2**0.5])
    references = torch.stack([e[0], e[1]])
    # image 0: cos 1 and 0 -> 50; image 1: cos 1/sqrt2 with both -> 70.71
    torch.testing.assert_close(image_scores(features, references), torch.tensor([50.0, 100 / 2**0.5]))
    torch.testing.assert_close(text_scores(features, e[1], 100.0), torch.tensor([0.0, 100 / 2**0.5]))
    torch.testing.assert_close(text_scores(features, e[0], 14.0), torch.tensor([14.0, 14 / 2**0.5]))
