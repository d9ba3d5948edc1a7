"""The output folder of a training: the lock, other runs' outputs, metrics trimmed on resume."""

import json
import os
import subprocess
import sys

import pytest

from dlcv.cli import UserError
from dlcv.training.run_dir import LOCK_NAME, RUN_OUTPUTS, RunLock, other_run_outputs, trim_metrics


def test_trim_metrics_keeps_the_records_up_to_the_checkpoint_and_drops_half_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (5, 10, 15, 20)]
    path.write_text("\n".join(lines) + "\n" + '{"step": 25, "lo')  # a crash in the middle of a line
    assert trim_metrics(path, 10) == 3
    assert path.read_text() == lines[0] + "\n" + lines[1] + "\n"
    before = path.stat().st_mtime_ns
    assert trim_metrics(path, 10) == 0 and path.stat().st_mtime_ns == before  # nothing to do: untouched
    assert trim_metrics(tmp_path / "none.jsonl", 3) == 0 and not (tmp_path / "none.jsonl").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temporary left


def test_other_run_outputs_names_what_is_there(tmp_path):
    assert other_run_outputs(tmp_path) == []
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "samples").mkdir()
    assert other_run_outputs(tmp_path) == []
    for name in RUN_OUTPUTS:
        (tmp_path / name).write_text("")
    assert other_run_outputs(tmp_path) == list(RUN_OUTPUTS)
    assert {
        "checkpoint.pt",
        "metrics.jsonl",
        "model.safetensors",
        "unet.pt",
        "learned_embeds.safetensors",
    } <= set(RUN_OUTPUTS)


def test_a_held_lock_refuses_a_second_holder_and_goes_with_its_release(tmp_path):
    first = RunLock(tmp_path)
    with first:
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        with pytest.raises(UserError) as err:
            RunLock(tmp_path).acquire()  # another open file: refused, in the same process too
        message = str(err.value)
        assert str(tmp_path) in message and f"process {os.getpid()}" in message and "\n" not in message
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path):  # free again
        pass


def test_a_lock_file_left_by_a_dead_process_is_taken_over(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    (tmp_path / LOCK_NAME).write_text(f"{child.pid}\n")  # a run killed with SIGKILL leaves this
    with RunLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_held_by_another_process_is_refused_until_it_ends(tmp_path):
    code = (
        "import sys, time; from dlcv.training.run_dir import RunLock; lock = RunLock(sys.argv[1]); "
        "lock.acquire(); print('locked', flush=True); sys.stdin.readline()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"in use by another training run \\(process {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.communicate("\n", timeout=60)  # it ends without releasing: the kernel drops the lock
    with RunLock(tmp_path):
        pass
