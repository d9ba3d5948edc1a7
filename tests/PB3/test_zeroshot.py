"""PB3/zeroshot.py: the command-line zero-shot run, its outputs and its error messages."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlcv.cli import UserError
from dlcv.clip_eval.tiny import random_clip, save_hf_folder

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "PB3" / "zeroshot.py"
LABELS = {"0": "apple", "1": "palm_tree", "2": "sweet_pepper"}


def _load_main():
    spec = importlib.util.spec_from_file_location("pb3_zeroshot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("zs")
    data = root / "clip_zeroshot"
    (data / "val").mkdir(parents=True)
    (data / "id2label.json").write_text(json.dumps(LABELS))
    rng = np.random.default_rng(0)
    for class_id in LABELS:
        for j in range(4):
            array = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(array).save(data / "val" / f"{class_id}_{j:04d}.png")
    weights = save_hf_folder(random_clip(), root / "clip-tiny")
    return data, weights


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_full_run_prints_and_writes_everything(setup, tmp_path, capsys):
    data, weights = setup
    out = tmp_path / "out"
    summary = _load_main()(
        [
            "--data",
            str(data),
            "--clip",
            str(weights),
            "--output_dir",
            str(out),
            "--device",
            "cpu",
            "--workers",
            "0",
            "--batch_size",
            "5",
        ]
    )
    stdout = capsys.readouterr().out
    assert f"CLIP: {weights}" in stdout
    assert "accuracy:" in stdout and "/12, 3 classes)" in stdout
    assert "labels as given (underscores kept)" in stdout
    assert "1 template(s), e.g. 'A photo of {label}.'" in stdout
    assert "correctly classified:" in stdout and "wrongly classified:" in stdout
    case_lines = [line for line in stdout.splitlines() if "  true: " in line]
    assert len(case_lines) == len(summary["right_cases"]) + len(summary["wrong_cases"])
    assert 1 <= len(case_lines) <= 10
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 12 and {r["label"] for r in rows} == set(LABELS.values())
    correct = sum(int(r["correct"]) for r in rows)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["correct"] == correct and summary["total"] == 12
    assert f"{100 * correct / 12:.2f}%" in stdout
    right = {r["file"] for r in rows if r["correct"] == "1"}
    assert set(summary["right_cases"]) <= right and not set(summary["wrong_cases"]) & right
    with Image.open(out / "cases.png") as figure:
        assert figure.mode == "RGB" and figure.width == 5 * (128 + 16)  # five cases per row


def test_ensemble_and_clean_labels(setup, tmp_path):
    data, weights = setup
    summary = _load_main()(
        [
            "--data",
            str(data),
            "--clip",
            str(weights),
            "--output_dir",
            str(tmp_path),
            "--device",
            "cpu",
            "--workers",
            "0",
            "--ensemble",
            "--clean-labels",
        ]
    )
    assert len(summary["templates"]) == 18
    assert summary["label_form"] == "underscores read as spaces"
    summary = _load_main()(
        [
            "--data",
            str(data),
            "--clip",
            str(weights),
            "--output_dir",
            str(tmp_path),
            "--device",
            "cpu",
            "--workers",
            "0",
            "--template",
            "a {label}",
            "--template",
            "an image of {}",
        ]
    )
    assert summary["templates"] == ["a {label}", "an image of {}"]


def test_bad_inputs_have_clear_messages(setup, tmp_path):
    data, weights = setup
    bad = tmp_path / "bad"
    (bad / "val").mkdir(parents=True)
    (bad / "id2label.json").write_text(json.dumps(LABELS))
    Image.new("RGB", (32, 32)).save(bad / "val" / "0_0000.png")
    (bad / "val" / "1_0000.png").write_bytes(b"broken")
    main = _load_main()
    with pytest.raises(UserError, match=r"cannot read image .*1_0000\.png"):  # from a worker
        main(
            [
                "--data",
                str(bad),
                "--clip",
                str(weights),
                "--output_dir",
                str(tmp_path / "o"),
                "--device",
                "cpu",
                "--workers",
                "2",
            ]
        )
    assert not (tmp_path / "o").exists()
    with pytest.raises(UserError, match="no such file, folder or locally cached model"):
        main(["--data", str(data), "--clip", str(tmp_path / "nowhere"), "--device", "cpu"])
    (bad / "val" / "1_0000.png").unlink()
    Image.new("RGB", (32, 32)).save(bad / "val" / "5_0000.png")
    with pytest.raises(UserError, match="class id 5 is not in"):
        main(["--data", str(bad), "--clip", str(weights), "--device", "cpu"])
    with pytest.raises(UserError, match="'photo' has no {label} placeholder"):
        main(["--data", str(data), "--template", "photo"])


def test_script_exits_2_with_one_line(tmp_path):
    proc = _run("--data", str(tmp_path / "missing"), "--device", "cpu")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: zero-shot data folder not found: {tmp_path / 'missing'}"
    assert proc.stdout == ""


def test_help_says_where_weights_go():
    proc = _run("--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "checkpoints/clip-vit-base-patch32" in text and "~/.cache/clip/ViT-B-32.pt" in text
    assert "--ensemble" in text and "--clean-labels" in text and "Never downloads" in text
