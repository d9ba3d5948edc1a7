"""bench/study_pb1_recipe.py: the sampler sweep over several models and seeds, and --record-only."""

from __future__ import annotations

import json

import pytest
import torch

from dlcv.digits.classifiers import build_digit_classifier, save_digit_classifier

from ..conftest import load_script


@pytest.fixture
def graders(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "graders"
    for name in ("mnistm", "svhn"):
        save_digit_classifier(
            build_digit_classifier("smallcnn"), folder / f"{name}_classifier.safetensors", "smallcnn"
        )
    return folder


def test_the_sweep_grades_every_model_with_every_seed_per_setting(
    tmp_path, graders, tiny_pb1_model, digits_root
):
    study = load_script("bench/study_pb1_recipe.py")
    record = tmp_path / "sweep.json"
    study.main(
        [
            "--sweep",
            str(tiny_pb1_model),
            str(tiny_pb1_model),
            "--sampling-seeds",
            "3",
            "4",
            "--settings",
            "ddim:2:1",
            "dpm++:2:2/3:1",
            "--per-class",
            "1",
            "--data",
            str(digits_root),
            "--graders",
            str(graders),
            "--out",
            str(tmp_path / "out"),
            "--record",
            str(record),
        ]
    )
    data = json.loads(record.read_text())
    assert data["sampling_seeds"] == [3, 4] and len(data["models"]) == 2 and data["commit"]
    first, second = data["results"]
    assert [r["seed"] for r in first["runs"]] == [3, 4, 3, 4]
    assert first["sampler"] == "ddim" and first["steps"] == 2 and first["eta"] == 0.0
    assert second["guidance"] == [2.0, 3.0] and second["eta"] == 1.0
    for result in data["results"]:
        assert all(r["svhn_total"] == 10 for r in result["runs"])
        assert result["svhn"] == pytest.approx(sum(r["svhn"] for r in result["runs"]) / 4)
    # one model, one seed: the same images whichever model entry they come from
    assert first["runs"][0]["svhn_per_digit"] == first["runs"][2]["svhn_per_digit"]


def test_record_only_merges_a_seeds_graded_results_and_refuses_ungraded_ones(tmp_path, graders, digits_root):
    study = load_script("bench/study_pb1_recipe.py")
    out, record = tmp_path / "s1", tmp_path / "record.json"
    (out / "results").mkdir(parents=True)
    graded = {"name": "preset", "overrides": [], "base": "demo", "steps": 7, "points": [{"step": 7}]}
    (out / "results" / "preset.json").write_text(json.dumps(graded))
    record.write_text(json.dumps({"runs": {"preset": {"0": {"steps": 7}}}}))
    args = [
        "--options",
        "preset",
        "--seed",
        "1",
        "--out",
        str(out),
        "--graders",
        str(graders),
        "--data",
        str(digits_root),
        "--record",
        str(record),
        "--record-only",
    ]
    study.main(args)
    runs = json.loads(record.read_text())["runs"]["preset"]
    assert set(runs) == {"0", "1"} and runs["1"]["points"] == [{"step": 7}] and runs["1"]["commit"]
    (out / "results" / "preset.json").write_text(json.dumps({**graded, "points": []}))
    with pytest.raises(SystemExit, match="no graded points"):
        study.main(args)
