"""``python -m dlcv.report``: fake run folders (tiny PNGs and JSON) in, one page with every item out."""

from __future__ import annotations

import ast
import csv
import json
import os
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from dlcv.clip_eval.grading import PromptResult, results_to_json
from dlcv.digits.grading import grades_record
from dlcv.io.checkpoint import save_weights
from dlcv.report import __main__ as report_cli
from dlcv.report.plots import read_metrics

from ..conftest import REPO, run_script

ITEMS = 11  # PB1: curve, recipe, grids, reverse process, accuracies; PB2: face, digits, MSE; PB3: 3
NO_DIGITS = ITEMS - 1  # the PB2 item on the digit model is shown only when its figures exist


def png(path: Path, colour=(10, 20, 30), size=(8, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def metrics(path: Path, steps, timed: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {"step": s, "loss": 2.0 / s, "lr": 1e-3, "images_per_s": 100.0}
            | ({"elapsed_s": 3.0 * s} if timed else {})
        )
        for s in steps
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_pb1(run: Path, timed: bool = True) -> None:
    pb1 = run / "pb1"
    metrics(pb1 / "metrics.jsonl", [5, 10, 15, 20], timed)
    config = {
        "model": {"base_channels": 16},
        "diffusion": {"num_train_timesteps": 1000},
        "sample": {"sampler": "ddim", "steps": 5, "guidance": 2.0},
    }
    save_weights({"w": torch.zeros(2)}, pb1 / "model.safetensors", config)
    state = {
        "config": {**config, "train": {"steps": 20, "lr": 0.00123}},
        "step": 20,
        "train_config": {"seed": 7, "device": "cpu", "out_dir": "x"},
    }
    torch.save(state, pb1 / "checkpoint.pt")
    for name in ("mnistm_grid", "svhn_grid", "mnistm_reverse_process", "svhn_reverse_process"):
        png(run / "figures" / "pb1" / f"{name}.png")


def make_run(root: Path) -> tuple[Path, Path, Path]:
    """A run folder with every input, the face ground truth and an input.json."""
    run = root / "run"
    make_pb1(run)
    for dataset in ("mnistm", "svhn"):
        for k in range(3):
            png(run / "pb1_outputs" / dataset / f"{k}_001.png")
    stats = {
        "mnistm": {"acc": 0.978, "correct": 489, "total": 500, "per_digit": {d: [49, 50] for d in range(10)}},
        "svhn": {"acc": 0.93, "correct": 465, "total": 500, "per_digit": {d: [46, 50] for d in range(10)}},
        "acc": 0.954,
    }
    record = grades_record(stats, run / "pb1_outputs", root / "Classifier.pth", root / "svhn.pth")
    (run / "pb1_outputs" / "grades.json").write_text(json.dumps(record))
    for folder in ("pb2", "pb2_face"):
        for name in ("eta_grid", "interpolation_slerp", "interpolation_lerp"):
            png(run / "figures" / folder / f"{name}.png", (0, 0, 200 if folder == "pb2" else 100))
    gt = root / "gt"
    for name in ("00.png", "01.png"):
        png(run / "pb2_outputs" / name, (12, 20, 30))  # MSE against GT: (2^2 + 0 + 0) / 3
        png(gt / name, (10, 20, 30))
    for key in ("0", "1"):
        metrics(run / "pb3" / key / "metrics.jsonl", [50, 100, 150])
        (run / "pb3" / key / "learned_embeds.safetensors").write_bytes(b"x")
        png(run / "pb3" / key / "samples" / "step_0000150.png")
        for index in (0, 1):
            for i in range(25):
                png(run / "pb3_outputs" / key / str(index) / f"{i:02d}.png", (i * 10, 0, 0))
    results = [
        PromptResult(key, i, f"eval prompt {key}/{i}", 80.0 + i, 30.5, (79, 34), ["00.png"])
        for key in ("0", "1")
        for i in (0, 1)
    ]
    (run / "pb3_outputs" / "grades.json").write_text(json.dumps(results_to_json(results)))
    zs = run / "clip_zeroshot"
    zs.mkdir()
    right, wrong = [f"{c}_{c}.png" for c in range(5)], [f"{c}_9.png" for c in range(5)]
    (zs / "summary.json").write_text(
        json.dumps(
            {
                "accuracy": 0.612,
                "correct": 1530,
                "total": 2500,
                "classes": 50,
                "templates": ["A photo of {label}."],
                "label_form": "as given (underscores kept)",
                "clip": "checkpoints/clip-vit-base-patch32",
                "right_cases": right,
                "wrong_cases": wrong,
            }
        )
    )
    with (zs / "predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "class_id", "label", "pred_id", "pred_label", "correct", "confidence"])
        for name in right:
            writer.writerow([name, 1, "palm_tree", 1, "palm_tree", 1, "0.9"])
        for name in wrong:
            writer.writerow([name, 2, "apple", 3, "pear", 0, "0.4"])
    png(zs / "cases.png")
    ti_input = root / "input.json"
    ti_input.write_text(
        json.dumps(
            {
                key: {
                    "token_name": f"<new{key}>",
                    "prompt": [f"A <new{key}> on a hill.", f"A <new{key}> by the sea."],
                }
                for key in ("0", "1")
            }
        )
    )
    return run, gt, ti_input


def build(argv: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """``python -m dlcv.report ARGV`` in this process: (exit status, stdout, stderr)."""
    monkeypatch.setattr("sys.argv", ["python -m dlcv.report", *argv])
    with pytest.raises(SystemExit) as exit_info:
        report_cli.run(report_cli.main)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def image_links(out: Path) -> tuple[list[str], list[str]]:
    html = (out / "index.html").read_text()
    md = (out / "report.md").read_text()
    return re.findall(r'<img src="([^"]+)"', html), re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def test_a_complete_run_fills_every_item(tmp_path, monkeypatch, capsys):
    run, gt, ti_input = make_run(tmp_path)
    out = tmp_path / "report"
    argv = ["--run", str(run), "--out", str(out), "--face-gt", str(gt), "--ti-input", str(ti_input)]
    code, stdout, stderr = build(argv, monkeypatch, capsys)
    assert code == 0, stderr
    assert stdout.splitlines() == [
        f"report: {out / 'index.html'} (and report.md): {ITEMS} of {ITEMS} items complete; nothing missing"
    ]
    html = (out / "index.html").read_text()
    md = (out / "report.md").read_text()
    for text in (
        "0.9780",
        "489/500",
        "49/50",
        "0.9540",
        "1.3333",
        "61.20%",
        "1530/2500",
        "palm_tree",
        "pear",
        "80.00 / 79",
        "30.50 / 34",
        "lr: 0.00123",
        "seed: 7",
    ):
        assert text in html and text in md, text
    # SVHN 0.93 passes the simple line (0.90) and fails the strong one (0.95); every prompt fails on text.
    assert re.search(
        r"<td>SVHN</td><td>0.9300</td><td>465/500</td><td class=\"ok\">pass</td>"
        r"<td class=\"bad\">FAIL</td>",
        html,
    )
    assert "0 of 4 prompts pass" in html
    assert '<td>1.3333</td><td>mean &lt; 20</td><td class="ok">PASS</td>' in html
    assert "Missing" not in html and "Missing" not in md
    # the provenance: the command and the checkpoint behind each figure
    model = run / "pb1" / "model.safetensors"
    assert f"python PB1/report.py --out-dir {run / 'figures' / 'pb1'} --ckpt {model}" in md
    assert f"python PB2/experiments.py --digit-ckpt {run / 'pb1' / 'model.safetensors'}" in md
    assert str(tmp_path / "Classifier.pth") in md
    # the images: all placed next to the page, the same in both pages, and all readable
    html_images, md_images = image_links(out)
    # PB1: curve + 4 figures; PB2: 3 face + 3 digit figures + outputs vs GT; PB3: cases, curves,
    # 2 validation samples, 4 prompt grids
    assert html_images == md_images and len(html_images) == len(set(html_images)) == 5 + 7 + 8
    for href in html_images:
        assert href.startswith("img/") and Image.open(out / href).size[0] > 0
    # the digit model's eta grid and the face UNet's have the same file name: both kept
    eta = [h for h in html_images if h.endswith("eta_grid.png")]
    assert len(eta) == 2 and {Image.open(out / h).getpixel((0, 0)) for h in eta} == {(0, 0, 200), (0, 0, 100)}
    # generation prompts come from input.json, escaped in both pages
    assert "A &lt;new0&gt; on a hill." in html and "A &lt;new0&gt; on a hill." in md
    # offline: one inline stylesheet, no script, nothing from elsewhere
    assert html.count("<style>") == 1 and "<script" not in html and 'rel="stylesheet"' not in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)


def test_training_curves_against_time_when_logged(tmp_path):
    timed, untimed = tmp_path / "a", tmp_path / "b"
    make_pb1(timed)
    make_pb1(untimed, timed=False)
    for run in (timed, untimed):
        report_cli.main(["--run", str(run), "--out", str(run / "report")])
    # two panels (steps and minutes) when elapsed_s is logged, one (steps) when not
    wide = Image.open(timed / "report" / "img" / "pb1_training_curve.png").size
    narrow = Image.open(untimed / "report" / "img" / "pb1_training_curve.png").size
    assert wide[0] > 1.5 * narrow[0] and wide[1] == narrow[1]
    assert "<td>1.0</td>" in (timed / "report" / "index.html").read_text()  # 60 s of training = 1.0 min
    assert "not logged" in (untimed / "report" / "index.html").read_text()


def test_partial_run_marks_each_gap_and_exits_0(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    path = metrics(run / "pb1" / "metrics.jsonl", [5, 10, 15])
    with path.open("a") as f:
        f.write('{"step": 20, "lo')  # killed while writing
    png(run / "figures" / "pb1" / "mnistm_grid.png")
    (run / "pb1_outputs" / "mnistm").mkdir(parents=True)
    out = tmp_path / "report"
    code, stdout, stderr = build(["--run", str(run), "--out", str(out)], monkeypatch, capsys)
    assert code == 0 and stderr == ""
    lines = stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"report: {out / 'index.html'} (and report.md): 1 of {NO_DIGITS} items")
    summary = lines[0].split("missing: ", 1)[1].split("; ")
    assert "PB1: 10x10 grids of generated digits: svhn_grid.png" in summary
    assert "PB1: grader's accuracies" in summary and "PB1: recipe (config)" in summary
    assert sum(s.startswith("PB3:") for s in summary) == 3
    html = (out / "index.html").read_text()
    assert html.count('class="gap"') == len(summary)
    assert "1 unreadable line(s) skipped" in html
    # each gap names the command that produces it, with this run's paths
    assert f"python PB1/report.py --out-dir {run / 'figures' / 'pb1'}" in html
    assert f"--json {run / 'pb1_outputs' / 'grades.json'}" in html
    assert (
        f"python PB2/experiments.py --unet hw2_data/face/UNet.pt --noise-dir hw2_data/face/noise "
        f"--out-dir {run / 'figures' / 'pb2_face'}" in html
    )
    assert f"not found in {run / 'clip_zeroshot'}" in html
    html_images, md_images = image_links(out)
    assert html_images == md_images == ["img/pb1_training_curve.png", "img/pb1_mnistm_grid.png"]


def test_unreadable_or_foreign_json_is_a_gap_not_a_crash(tmp_path, monkeypatch, capsys):
    run, gt, ti_input = make_run(tmp_path)
    (run / "pb1_outputs" / "grades.json").write_text("{not json")
    (run / "pb3_outputs" / "grades.json").write_text(json.dumps({"some": "dict"}))
    (run / "clip_zeroshot" / "summary.json").write_text(json.dumps({"accuracy": "high"}))
    code, stdout, _ = build(["--run", str(run), "--out", str(tmp_path / "r")], monkeypatch, capsys)
    assert code == 0
    assert "PB1: grader's accuracies; " in stdout and "PB3: grader's CLIP scores" in stdout
    assert "PB3: CLIP zero-shot" in stdout
    html = (tmp_path / "r" / "index.html").read_text()
    assert "grades.json is not valid JSON" in html  # read through GradesRecord.load
    assert "expected a JSON list, one entry per prompt" in html  # through clip_eval.grading.load_results
    assert "is not what PB3/zeroshot.py writes: no &#x27;templates&#x27;" in html  # ZeroShotSummary.load
    assert html.count("not graded") == 4  # the sample grids are still shown, marked as not graded


def test_stale_figures_are_flagged(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    make_pb1(run)
    old = (run / "pb1" / "model.safetensors").stat().st_mtime - 3600
    for path in (run / "figures" / "pb1").iterdir():
        os.utime(path, (old, old))
    build(["--run", str(run), "--out", str(tmp_path / "r")], monkeypatch, capsys)
    html = (tmp_path / "r" / "index.html").read_text()
    assert html.count(f"Older than <code>{run / 'pb1' / 'model.safetensors'}</code>") == 2


def test_not_a_run_folder_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    code, stdout, stderr = build(["--run", str(tmp_path), "--out", str(tmp_path / "r")], monkeypatch, capsys)
    assert code == 2 and stdout == ""
    assert len(stderr.splitlines()) == 1
    assert stderr.startswith(f"error: {tmp_path} is not a run folder: none of pb1/, figures/pb1/, ")
    assert not (tmp_path / "r").exists()

    code, _, stderr = build(["--run", str(tmp_path / "nope")], monkeypatch, capsys)
    assert code == 2 and stderr == f"error: --run: folder not found: {tmp_path / 'nope'}\n"

    make_pb1(tmp_path / "run")
    code, _, stderr = build(["--run", str(tmp_path / "run" / "pb1")], monkeypatch, capsys)
    assert code == 2 and stderr.splitlines()[0].endswith(
        "; it looks like a PB1 training folder: pass it as --pb1-model"
    )

    code, _, stderr = build(["--pb1-figures", str(tmp_path / "nope")], monkeypatch, capsys)
    assert code == 2 and stderr == f"error: --pb1-figures: not found: {tmp_path / 'nope'}\n"

    code, _, stderr = build(
        ["--run", str(tmp_path / "run"), "--out", str(tmp_path / "notes.txt")], monkeypatch, capsys
    )
    assert code == 2 and stderr == f"error: --out {tmp_path / 'notes.txt'} is a file, not a folder\n"


def test_module_entry_point_errors_in_one_line(tmp_path):
    (tmp_path / "x.txt").write_text("")
    result = run_script("-m", "dlcv.report", "--run", str(tmp_path), "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


def test_defaults_read_the_checkout_then_demo_out(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = build([], monkeypatch, capsys)  # a fresh clone: nothing run yet
    assert code == 0 and f"0 of {NO_DIGITS} items complete" in stdout
    html = Path("report/index.html").read_text()
    assert "python PB1/train.py --data hw2_data/digits --out checkpoints/pb1" in html
    assert "not found in checkpoints/pb1" in html

    make_pb1(tmp_path / "demo_out")  # after make demo
    png(tmp_path / "figures" / "pb1" / "mnistm_grid.png", (255, 0, 0))  # a checkout figure wins
    code, stdout, _ = build([], monkeypatch, capsys)
    html = Path("report/index.html").read_text()
    assert code == 0 and "demo_out/ (a run folder" in html
    assert "not found in checkpoints/pb1, demo_out/pb1" not in html and "lr: 0.00123" in html
    assert Image.open("report/img/pb1_mnistm_grid.png").getpixel((0, 0)) == (255, 0, 0)
    assert "PB1: 10x10 grids of generated digits: svhn_grid.png" in stdout  # not mixed in from demo_out

    # a flag names one input directly: the model file, or its folder
    argv = ["--pb1-model", "demo_out/pb1/model.safetensors", "--out", "r2"]
    code, stdout, _ = build(argv, monkeypatch, capsys)
    assert code == 0 and "`demo_out/pb1` (`--pb1-model`)" in Path("r2/report.md").read_text()


def test_metrics_log_survives_restarts_and_resumes(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [
        {"step": 5, "loss": 9.0, "elapsed_s": 1.0},  # an earlier attempt, restarted from scratch
        {"step": 5, "loss": 1.0, "elapsed_s": 2.0},
        {"step": 10, "loss": 0.8, "elapsed_s": 4.0, "val_acc": 0.5},
        {"step": 15, "loss": 0.6, "elapsed_s": 1.5, "val_acc": 0.7},  # resumed: the clock starts again
        {"step": 20, "loss": float("nan"), "elapsed_s": 3.0},
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n[1, 2]\n")
    log = read_metrics(path)
    assert log.steps == [5, 10, 15]
    assert log.seconds == [2.0, 4.0, 5.5]
    assert log.series["loss"] == [1.0, 0.8, 0.6]
    assert "val_acc" not in log.series  # not logged at every step: not a series
    assert log.notes == ["2 unreadable line(s) skipped", "the file holds 2 runs; the last one is shown"]


def test_the_package_imports_no_scripts():
    """dlcv.report reads what the commands wrote; it never imports PB*/, evaluation/, bench/, scripts/."""
    for path in (REPO / "dlcv" / "report").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in {"PB1", "PB2", "PB3", "evaluation", "bench", "scripts"}, path
