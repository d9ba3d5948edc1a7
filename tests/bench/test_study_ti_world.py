"""bench/study_ti_world.py: a world trained once, checked at the planned steps, resumable."""

from __future__ import annotations

import json

import pytest

from dlcv.cli import UserError

from ..conftest import load_script


def _study():
    return load_script("bench/study_ti_world.py")


TINY = [
    "world_steps=6",
    "world_batch=4",
    "world_images=100",
    "world_channels=8,16,32",
    "grader_steps=4",
    "grader_images=200",
    "ti_steps=3",
    "ti_batch=2",
    "n_images=3",
    "sampler_steps=2",
]


def test_a_study_checks_its_world_at_the_planned_steps_and_resumes(tmp_path, capsys):
    study = _study()
    argv = ["--out", str(tmp_path), "--check-from", "3", "--check-every", "3"]
    for pair in TINY:
        argv += ["--set", pair]
    study.main(argv)
    lines = [json.loads(line) for line in (tmp_path / "checks.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [3, 6]
    for line in lines:
        assert 0 <= line["named"] <= 1
        assert len(line["object"]) == len(line["style"]) == len(line["fives"]) == 2
        world = json.loads((tmp_path / f"check_{line['step']:06d}" / "world" / "done.json").read_text())
        assert world["step"] == line["step"] and world["architecture"]["channels"] == [8, 16, 32]
    assert capsys.readouterr().out.count("grader digit") == 1  # trained once, copied into the later check
    study.main(argv)  # finished: nothing is trained or checked again
    assert "finished (2 checks" in capsys.readouterr().out
    assert len((tmp_path / "checks.jsonl").read_text().splitlines()) == 2


def test_settings_take_typed_values_and_refuse_unknown_keys():
    study = _study()
    s = study.settings(["world_generic=0.4", "world_channels=32,64,128", "ti_steps=10"])
    assert (s.world_generic, s.world_channels, s.ti_steps) == (0.4, (32, 64, 128), 10)
    with pytest.raises(UserError, match="KEY=VALUE"):
        study.settings(["no_such_field=1"])
    with pytest.raises(UserError, match="does not read as int"):
        study.settings(["ti_steps=many"])
    with pytest.raises(UserError, match="--check-every must be >= 1"):
        study.main(["--out", "unused", "--check-every", "0"])
