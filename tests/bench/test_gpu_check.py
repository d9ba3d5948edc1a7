"""bench/gpu_check.py: the prepared GPU check runs end to end on the CPU (--dry-run, tiny networks)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from ..conftest import load_script, run_script


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
    assert all(part["status"] == "ok" for part in parts.values())  # "ok": none ran into its limit
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


FAKE_PART = """
import json, subprocess, sys, time
from pathlib import Path
name, out = sys.argv[sys.argv.index("--part") + 1], Path(sys.argv[sys.argv.index("--out") + 1])
figure = {"figure": "half done", "value": 1.0, "unit": "s", "reference": None, "ratio": None, "note": ""}
if name == "sd":
    sys.exit(3)  # fails before recording anything
record = {"part": name, "status": "running" if name == "pb1" else "ok", "figures": [figure], "info": {}}
(out / "parts" / f"{name}.json").write_text(json.dumps(record))
if name == "pb1":  # hangs, with a child of its own
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    (out / "pids").write_text(f"{helper.pid}\\n")
    (out / "ready").write_text("")
    time.sleep(600)
"""


def _dead(pid: int) -> bool:
    """The process is gone or a zombie (killed, not reaped yet), waiting up to 60 s for its end."""
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(600):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] in "ZX":
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def test_a_part_over_its_limit_is_killed_with_its_children_and_keeps_its_figures(tmp_path, monkeypatch):
    """run_part on a stand-in for the part's process: one that never ends (and has a child) is
    killed with its process group once its limit has passed after it started, what it recorded is
    kept; one that fails is "failed" with its exit code; one that ends is "ok"."""
    gc = load_script("bench/gpu_check.py", "gpu_check_under_test")
    out = tmp_path / "gc"
    for sub in ("parts", "logs", "work"):
        (out / sub).mkdir(parents=True)
    script = tmp_path / "fake_part.py"
    script.write_text(FAKE_PART)
    monkeypatch.setattr(gc, "__file__", str(script))  # run_part starts this file with --part NAME

    class StartedPopen(subprocess.Popen):
        """The part's limit counts from when the hanging stand-in is ready (not from when Python
        started), so the result does not depend on how fast this machine starts a process."""

        def wait(self, timeout=None):
            while timeout is not None and not (out / "ready").exists() and self.poll() is None:
                time.sleep(0.01)
            return super().wait(timeout)

    monkeypatch.setattr(gc, "subprocess", SimpleNamespace(**{**vars(subprocess), "Popen": StartedPopen}))
    args = SimpleNamespace(out=str(out), digits=str(tmp_path), dry_run=True)
    hung = gc.run_part("pb1", args, limit=1.0)
    assert hung["status"] == "timed out" and hung["error"] == "killed after its limit of 1 s"
    assert hung["seconds"] >= 1.0 and hung["limit_s"] == 1
    assert [row["figure"] for row in hung["figures"]] == ["half done"]  # recorded before the kill: kept
    assert _dead(int((out / "pids").read_text()))  # its child went with it
    failed = gc.run_part("sd", args, limit=300.0)
    assert failed["status"] == "failed" and failed["error"] == "exit code 3" and failed["figures"] == []
    ok = gc.run_part("pb2", args, limit=300.0)
    assert ok["status"] == "ok" and len(ok["figures"]) == 1 and "error" not in ok


def test_parts_share_the_time_left_and_those_without_any_are_skipped(tmp_path, monkeypatch, capsys):
    """main on a fake clock, each part taking a set number of seconds: each part's limit is its own
    or what is left of --max-seconds, a part with under 5 s left is skipped, the table says so."""
    gc = load_script("bench/gpu_check.py", "gpu_check_under_test")
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(gc, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    limits = {}
    takes = {"pb1": None, "pb2": 66.0}  # None: runs into its limit

    def fake_run_part(name, args, limit):
        limits[name] = limit
        (Path(args.out) / "logs" / f"{name}.log").write_text(f"{name}'s last line\n")
        seconds = limit if takes[name] is None else takes[name]
        clock.now += seconds
        status = "timed out" if takes[name] is None else "ok"
        return {"part": name, "status": status, "figures": [], "seconds": seconds, "limit_s": round(limit)}

    monkeypatch.setattr(gc, "run_part", fake_run_part)
    out = tmp_path / "gc"
    argv = ["--dry-run", "--out", str(out), "--parts", "pb1", "pb2", "ti", "clip", "--max-seconds", "250"]
    with pytest.raises(SystemExit) as exit_:
        gc.main(argv)
    printed = capsys.readouterr().out
    assert exit_.value.code == 1 and "not ok: pb1, ti, clip" in printed
    assert "pb1's last line" in printed  # a part that is not ok shows its log's tail
    assert limits == {"pb1": gc.DRY_LIMIT, "pb2": 250 - gc.DRY_LIMIT}  # 180, then the 70 s left
    report = json.loads((out / "gpu_check.json").read_text())
    statuses = {name: part["status"] for name, part in report["parts"].items()}
    assert statuses == {"pb1": "timed out", "pb2": "ok", "ti": "skipped", "clip": "skipped"}
    assert report["parts"]["ti"]["error"] == "no time left" and report["seconds"] == 246.0
    table = (out / "gpu_check.md").read_text()
    assert "| pb1 | **timed out** after 180 s" in table and "| ti | **skipped** |" in table


def test_refuses_to_run_without_cuda(tmp_path):
    result = run_script("bench/gpu_check.py", "--out", str(tmp_path / "gc"), env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2
    assert "gpu_check needs CUDA (use --dry-run" in result.stderr
