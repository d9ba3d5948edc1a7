"""bench/gpu_check.py: the prepared GPU check runs end to end on the CPU (--dry-run, tiny networks)."""

from __future__ import annotations

import json

from ..conftest import run_script


def test_dry_run_runs_every_part_and_writes_the_table(tmp_path, digits_root):
    out = tmp_path / "gc"
    result = run_script(
        "bench/gpu_check.py", "--dry-run", "--out", str(out), "--digits", str(digits_root), timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    env = report["environment"]
    assert env["dry_run"] and env["torch"] and env["auto_precision"] == "fp32"
    parts = report["parts"]
    assert list(parts) == ["pb1", "pb2", "sd", "ti", "clip"]
    assert all(part["status"] == "ok" and part["seconds"] <= part["limit_s"] for part in parts.values())
    figures = {row["figure"]: row for part in parts.values() for row in part["figures"]}
    names = "\n".join(figures)
    for needle in (
        "PB1 training speed",
        "hw2_1.sh: 1,000 images, wall time",
        "accuracy of the 1,000 images, svhn",
        "hw2_2.sh wall time",
        "largest uint8 difference",
        "SD generation bf16: s per image",
        "hw2_3.sh projected for 100 images",
        "Textual Inversion fp16: s per step",
        "Textual Inversion bf16: peak allocated",
        "zero-shot",
    ):
        assert needle in names, needle
    assert figures["largest uint8 difference, fp32 vs fp32"]["value"] == 0  # the CPU's default is fp32
    sd = [
        row
        for row in figures.values()
        if row["figure"].startswith("SD generation")
        and "s per image" in row["figure"]
        and "DDIM" not in row["figure"]
    ]
    assert len(sd) == 2 and all(row["reference"] > 0 and row["ratio"] > 0 for row in sd)  # vs diffusers
    fp16_step = figures["Textual Inversion fp16: s per step (batch 2, 32 px)"]
    assert "loss scale" in fp16_step["note"]  # the trainer's GradScaler ran
    table = (out / "gpu_check.md").read_text()
    assert "| part | figure | value | reference (same run) | ratio | note |" in table
    assert table.count("\n| ") >= len(figures) + 1
    assert (out / "logs" / "pb1.log").is_file()


def test_a_part_over_its_limit_is_killed_and_the_rest_reported(tmp_path, digits_root):
    out = tmp_path / "gc"
    result = run_script(
        "bench/gpu_check.py",
        "--dry-run",
        "--out",
        str(out),
        "--digits",
        str(digits_root),
        "--parts",
        "pb1",
        "clip",
        "--max-seconds",
        "6",
    )
    assert result.returncode == 1 and "not ok: pb1, clip" in result.stdout
    parts = json.loads((out / "gpu_check.json").read_text())["parts"]
    assert parts["pb1"]["status"] == "timed out" and parts["pb1"]["seconds"] < 20
    assert parts["clip"]["status"] == "skipped"
    table = (out / "gpu_check.md").read_text()
    assert "| pb1 | **timed out** after" in table and "| clip | **skipped** |" in table


def test_refuses_to_run_without_cuda(tmp_path):
    result = run_script("bench/gpu_check.py", "--out", str(tmp_path / "gc"), env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2
    assert "gpu_check needs CUDA (use --dry-run" in result.stderr
