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


def test_a_study_checks_its_world_at_the_planned_steps_and_resumes(tmp_path, capsys, monkeypatch):
    study = _study()
    monkeypatch.setattr(
        study, "reference_speed", lambda threads: 4.25
    )  # its timing is bench/reference_speed's
    record = tmp_path / "results" / "study.json"
    record.parent.mkdir()
    record.write_text(json.dumps({"rows": {"world_seed=1": {"kept": True}}}))
    argv = ["--out", str(tmp_path), "--check-from", "3", "--check-every", "3", "--record", str(record)]
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
    rows = json.loads(record.read_text())["rows"]
    key = " ".join(sorted(TINY))
    assert set(rows) == {"world_seed=1", key} and rows["world_seed=1"] == {"kept": True}  # other rows kept
    assert rows[key]["checks"] == lines and rows[key]["set"] == sorted(TINY)
    assert rows[key]["reference_steps_per_s"] == 4.25 and rows[key]["settings"]["world_steps"] == 6
    assert rows[key]["commit"] and rows[key]["threads"] >= 1  # provenance: where the row came from


def test_words_count_each_digits_descriptions_in_the_training_set(tmp_path):
    study = _study()
    out = tmp_path / "strokes.json"
    study.main(["--words", str(out), "--set", "world_images=200"])
    data = json.loads(out.read_text())
    assert (
        data["images"] == 200
        and data["per_digit_images"] == [20] * 10
        and sum(data["per_style_images"]) == 200
    )
    s = study.settings(["world_images=200"])
    words = study.world.world_data(200, s.held_out, s.world_seed, s.world_generic).words
    for d, row in enumerate(data["per_digit_first_word"]):
        assert len(row) == len(data["axes"]) == 5 and all(0 <= c <= 20 for c in row)
        assert data["per_digit_all_seven_words"][d] <= min(row[2:])  # all three never outnumber one
    assert sum(data["per_digit_first_word"][d][2] for d in range(10)) == int((words[:, 2] == 0).sum())
    assert data["per_digit_all_seven_words"][7] > data["per_digit_all_seven_words"][0]  # sevens are open...


def test_probe_draws_and_grades_each_prompt_of_the_shipped_world(tmp_path):
    study = _study()
    out = tmp_path / "probes.json"
    tiny = ["grader_steps=4", "grader_images=200", "sampler_steps=2"]
    argv = ["--out", str(tmp_path / "run"), "--probe", str(out), "--probe-images", "3"]
    study.main([*argv, *(x for pair in tiny for x in ("--set", pair))])
    data = json.loads(out.read_text())
    assert list(data["prompts"]) == list(study.PROBES)
    assert "a photo of a open top-heavy narrow-based digit" in data["prompts"]  # the world's caption grammar
    for found in data["prompts"].values():
        assert sum(found["digits"]) == 3 and 0 <= found["svhn"] <= 3
    assert data["world"]["training"]["steps"] == 3000 and 0 <= data["graders"]["digit"] <= 1
    assert data["settings"]["grader_steps"] == 4 and data["images_per_prompt"] == 3


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
    with pytest.raises(UserError, match="--out is required"):
        study.main(["--probe", "unused.json"])
    with pytest.raises(UserError, match="--probe-images must be >= 1"):
        study.main(["--out", "unused", "--probe", "unused.json", "--probe-images", "0"])
