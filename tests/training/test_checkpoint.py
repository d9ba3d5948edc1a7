import pytest
import torch

from dlcv.cli import UserError
from dlcv.training.checkpoint import load_checkpoint, load_weights, save_checkpoint, save_weights


def test_checkpoint_round_trip_leaves_no_temporary_files(tmp_path):
    path = save_checkpoint({"w": torch.ones(2), "step": 3, "cfg": {"a": [1, 2]}}, tmp_path / "c.pt")
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_foreign_pickles_and_missing_files_are_user_errors(tmp_path):
    import argparse  # any class outside the weights-only allow-list stands in for foreign code

    torch.save({"obj": argparse.Namespace(a=1)}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="junk.safetensors"):
        load_weights(tmp_path / "junk.safetensors")


def test_weights_carry_their_config(tmp_path):
    save_weights({"a": torch.arange(3.0)}, tmp_path / "m.safetensors", {"model": {"width": 4}})
    tensors, cfg = load_weights(tmp_path / "m.safetensors")
    assert torch.equal(tensors["a"], torch.arange(3.0)) and cfg == {"model": {"width": 4}}
