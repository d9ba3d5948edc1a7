"""The model the repository ships (dlcv/assets/pb1): what hw2_1.sh uses in a fresh clone."""

import hashlib
import json

import pytest

from dlcv.digits import model as pb1_model
from dlcv.digits.model import SHIPPED_MODEL, load_config, load_model

from ..conftest import REPO, load_script


def test_the_shipped_model_is_the_one_its_card_describes():
    assert SHIPPED_MODEL.is_file() and SHIPPED_MODEL.stat().st_size < 10_000_000
    results = json.loads((REPO / "docs" / "results" / "pb1_shipped.json").read_text())
    assert hashlib.sha256(SHIPPED_MODEL.read_bytes()).hexdigest() == results["runs"][0]["sha256"]
    assert results["runs"][0]["sha256"] in (SHIPPED_MODEL.parent / "MODEL_CARD.md").read_text()
    _, cfg = load_model(SHIPPED_MODEL)
    preset = load_config("demo")
    assert cfg["model"] == dict(preset.model) and cfg["sample"] == dict(preset.sample)
    for run in results["runs"]:  # the claim the card makes: the strong line on both datasets
        for graded in run["gradings"].values():
            assert graded["mnistm"]["acc"] >= 0.95 and graded["svhn"]["acc"] >= 0.95


def test_without_a_model_of_ones_own_generation_uses_the_shipped_one(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("PB1_CKPT", raising=False)
    monkeypatch.setattr(pb1_model, "DEFAULT_CKPT", tmp_path / "checkpoints" / "pb1" / "model.safetensors")
    inference = load_script("PB1/inference.py", "pb1_inference")
    inference.main(["--out-dir", str(tmp_path / "out"), "--n-per-digit", "2", "--device", "cpu"])
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "shipped model" in line]
    assert len(notes) == 1 and str(SHIPPED_MODEL) in notes[0]
    assert len(list((tmp_path / "out" / "svhn").glob("*.png"))) == 20


def test_a_model_of_ones_own_wins_over_the_shipped_one(monkeypatch, tmp_path, capsys, tiny_pb1_model):
    monkeypatch.setenv("PB1_CKPT", str(tiny_pb1_model))
    assert pb1_model.resolve_checkpoint(None) == tiny_pb1_model
    monkeypatch.delenv("PB1_CKPT")
    own = tmp_path / "checkpoints" / "pb1" / "model.safetensors"
    own.parent.mkdir(parents=True)
    own.write_bytes(tiny_pb1_model.read_bytes())
    monkeypatch.setattr(pb1_model, "DEFAULT_CKPT", own)
    assert pb1_model.resolve_checkpoint(None) == own
    assert "shipped" not in capsys.readouterr().err
    monkeypatch.setattr(pb1_model, "SHIPPED_MODEL", tmp_path / "none.safetensors")
    monkeypatch.setattr(pb1_model, "DEFAULT_CKPT", tmp_path / "missing.safetensors")
    with pytest.raises(Exception, match="PB1/train.py"):  # nothing at all: how to train one
        pb1_model.resolve_checkpoint(None)
