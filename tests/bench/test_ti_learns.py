"""bench/bench_ti_learns.py (``make demo-ti``): its flags; the check itself is tested in
tests/dlcv_bench/digit_world/test_check.py."""

from __future__ import annotations

import json
import sys

import pytest

from dlcv.cli import UserError

from ..conftest import load_script


def test_exporting_a_world_needs_one_trained_into_a_fresh_folder(tmp_path):
    bench = load_script("bench/bench_ti_learns.py")
    with pytest.raises(UserError, match="--export-world needs --train-world"):
        bench.main(["--out", str(tmp_path), "--export-world", str(tmp_path / "x")])
    (tmp_path / "world" / "unet").mkdir(parents=True)
    (tmp_path / "world" / "unet" / "config.json").write_text("{}")
    (tmp_path / "world" / "done.json").write_text("{}")
    with pytest.raises(UserError, match="already holds a world"):
        bench.main(["--out", str(tmp_path), "--train-world", "--export-world", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_a_length_below_one_is_refused_before_any_work(tmp_path):
    bench = load_script("bench/bench_ti_learns.py")
    with pytest.raises(UserError, match="--ti-steps must be >= 1, got 0"):
        bench.main(["--out", str(tmp_path), "--ti-steps", "0"])
    assert not any(tmp_path.iterdir())


def test_image_sets_must_be_distinct_and_results_need_a_world_already_there(tmp_path):
    bench = load_script("bench/bench_ti_learns.py")
    with pytest.raises(UserError, match="--image-sets must be distinct numbers >= 0"):
        bench.main(["--out", str(tmp_path), "--image-sets", "1", "1"])
    with pytest.raises(UserError, match="train it first"):
        bench.main(["--out", str(tmp_path), "--world-only", "--results", str(tmp_path / "r.json")])
    with pytest.raises(UserError, match="train it first"):
        bench.main(["--out", str(tmp_path), "--train-world", "--image-sets", "0", "1"])
    assert not any(tmp_path.iterdir())


def test_results_file_every_image_set_with_its_rows_and_provenance(tmp_path, monkeypatch):
    """What ``--results`` files: each image set's rates, images and timing under its number, the rows'
    prompts, the world, the settings, the provenance and the reference speed (the check itself is
    stubbed: tests/dlcv_bench/digit_world/test_check.py runs it)."""
    bench = load_script("bench/bench_ti_learns.py")
    calls = []

    def fake_sets(out, s, image_sets):
        calls.append((out, s, list(image_sets)))
        rates = {row: {"object_held_out_rate": 0.5, "style_svhn_rate": 0.25} for row in bench.check.ROWS}
        return {
            k: {
                "rates": rates,
                "seconds": 10.0 + k,
                "concept_images": {"new1": k},
                "denoising_gain": {},
                "random_norm": 4.0,
                "world": {"seed": 0},
                "world_named_digit_rate": {"rate": 0.96666},
                "graders_heldout_acc": {"digit": 0.97, "style": 0.99},
                "rows": {row: {"object": row, "style": row} for row in bench.check.ROWS},
                "settings": {"must": "not be kept per set"},
            }
            for k in image_sets
        }

    monkeypatch.setattr(bench.check, "check_image_sets", fake_sets)
    monkeypatch.setattr(bench, "reference_speed", lambda threads: 5.004)
    results = tmp_path / "ti_demo.json"
    args = ["--out", str(tmp_path / "out"), "--image-sets", "0", "2", "--ti-steps", "7"]
    args += ["--results", str(results)]
    monkeypatch.setattr(sys, "argv", [str(bench.REPO / "bench" / "bench_ti_learns.py"), *args])
    bench.main(args)
    assert calls[0][2] == [0, 2] and calls[0][1].ti_steps == 7
    data = json.loads(results.read_text())
    assert {"command", "commit", "date", "cpu", "cpus", "threads"} <= set(data)
    assert data["command"] == "python bench/bench_ti_learns.py " + " ".join(args)
    assert data["reference_steps_per_s"] == 5.0 and data["settings"]["ti_steps"] == 7
    assert data["named_digit_rate"] == 0.967 and data["world"] == {"seed": 0}
    assert list(data["image_sets"]) == ["0", "2"] and list(data["rows"]) == list(bench.check.ROWS)
    assert data["image_sets"]["2"]["seconds"] == 12.0 and "settings" not in data["image_sets"]["2"]
