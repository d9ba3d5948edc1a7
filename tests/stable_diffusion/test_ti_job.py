"""dlcv.stable_diffusion.ti_job: PB3/train.py's job checks its settings before the model loads,
resolves the device once and hands it, with each concept's settings, to the training."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dlcv.cli import UserError
from dlcv.io.images import save_png
from dlcv.stable_diffusion import ti_job
from dlcv.stable_diffusion.course import ConceptPlan
from dlcv.stable_diffusion.textual_inversion import TIConfig
from dlcv.stable_diffusion.ti_job import LearnJob, default_warmup, learn_concepts
from dlcv.training import TrainConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _job(tmp_path: Path, **train: object) -> LearnJob:
    root = tmp_path / "data"
    for key in ("0", "1"):
        save_png(torch.zeros(3, 8, 8, dtype=torch.uint8), root / key / "a.png")
    shutil.copy(FIXTURES / "textual_inversion_input.json", root / "input.json")
    plan = ConceptPlan(tmp_path / "pb3", json=str(root / "input.json"))
    settings = {"steps": 3, "batch_size": 2, "lr": 1e-3, "ema_decay": None, "device": "cpu", **train}
    cfg = TrainConfig(out_dir=Path(), **settings)  # (a TrainConfig that checks itself may refuse here)
    return LearnJob(str(root / "input.json"), plan, TIConfig(token="", init_word=""), cfg, scale_lr=True)


def test_default_warmup():
    assert (default_warmup(2000), default_warmup(200), default_warmup(10)) == (100, 10, 0)


BAD = [
    ({"time_budget": float("nan")}, "`time_budget` must be a positive"),
    ({"steps": 0}, "`steps` must be >= 1"),
    ({"lr": float("inf")}, "`lr` must be a positive number"),
    ({"sample_every": -1}, "`sample_every` must be >= 0"),
]


@pytest.mark.parametrize("train, message", BAD)
def test_bad_settings_are_refused_before_anything_loads(tmp_path, train, message):
    with pytest.raises(UserError, match=message):
        learn_concepts(_job(tmp_path, **train))


def test_the_device_is_resolved_once_and_passed_down(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ti_job, "load_model", lambda ckpt, config, device: calls.append(("load", device)))

    def fake_training(sd, images, ti, cfg, base_model, device):
        calls.append((ti.token, ti.kind, cfg.out_dir.name, cfg.device, device, cfg.lr))

    monkeypatch.setattr(ti_job, "train_textual_inversion", fake_training)
    learned = learn_concepts(_job(tmp_path))
    cpu = torch.device("cpu")
    assert [c.token for c in learned] == ["<new1>", "<new2>"]
    assert calls == [
        ("load", cpu),
        ("<new1>", "object", "0", "cpu", cpu, 2e-3),  # lr x batch 2 (scale_lr)
        ("<new2>", "style", "1", "cpu", cpu, 2e-3),
    ]
