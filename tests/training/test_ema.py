import pytest
import torch
from torch import nn

from dlcv.training.ema import EMA


def test_ema_tracks_a_moving_average_and_copies_buffers():
    model = nn.BatchNorm1d(3)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.running_mean.fill_(7.0)
    ema.update(model)  # warm-up decay min(0.5, 2/11) = 2/11
    expected = 1.0 + (3.0 - 1.0) * (1 - 2 / 11)
    torch.testing.assert_close(ema.model.weight, torch.full((3,), expected))
    assert torch.equal(ema.model.running_mean, torch.full((3,), 7.0))
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_state_round_trip_and_bad_decay():
    model = nn.Linear(2, 2)
    ema = EMA(model, 0.9)
    ema.update(model)
    other = EMA(nn.Linear(2, 2), 0.9)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1 and torch.equal(other.model.weight, ema.model.weight)
    with pytest.raises(ValueError):
        EMA(model, 1.0)
