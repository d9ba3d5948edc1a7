"""``dlcv.digits.training``: Problem 1's training job's settings, batches and loss."""

from __future__ import annotations

import pytest
import torch

from dlcv.cli import ArgumentError, UserError
from dlcv.digits.model import build_model, build_objective, build_schedule, load_config
from dlcv.digits.training import DigitTrainJob, digit_batches, digit_loss, pb1_config, pb1_train_config


def _train_config(**job):
    job = DigitTrainJob(config="tiny", device="cpu", **job)
    return pb1_train_config(job, pb1_config(job))


def test_a_time_budget_is_not_capped_by_the_presets_steps():
    """--time-budget alone: the budget decides (no ceiling); with --steps: the steps cap it."""
    runs = [_train_config(time_budget=30), _train_config(time_budget=30, steps=7), _train_config()]
    assert [(c.steps, c.time_budget) for c in runs] == [(None, 30.0), (7, 30.0), (20, None)]
    assert _train_config(precision="fp32").precision == "fp32"  # the shortcut for train.precision


def test_bad_settings_are_refused_before_any_data_is_read(tmp_path):
    with pytest.raises(ArgumentError, match="`time_budget` must be a positive number of seconds"):
        _train_config(time_budget=-1.0)
    with pytest.raises(UserError, match=r"config .*pb1_tiny\.yaml: train\.grad_accum must be >= 1, got 0"):
        _train_config(overrides=["train.grad_accum=0"])


def test_batches_are_balanced_when_asked_and_the_loss_drops_labels():
    images = torch.zeros(40, 3, 28, 28, dtype=torch.uint8)
    labels = torch.tensor([0] * 30 + [1] * 10)
    draw = digit_batches(images, labels, 4000, balanced=True)
    _, y = draw(torch.Generator().manual_seed(0))
    assert abs(float((y == 1).float().mean()) - 0.5) < 0.05
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = build_model(cfg)
    seen = []

    def net(x, t, y):
        seen.append(y.clone())
        return model(x, t, y)

    loss_fn = digit_loss(model, build_schedule(cfg), build_objective(cfg), p_uncond=0.5)
    loss = loss_fn(net, (images[:20], torch.full((20,), 3)), torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(seen[0].tolist()) == {3, model.null_class}  # label dropout: some become the null class
