import builtins
import os
import pickle
import stat

import pytest
import torch

from dlcv.cli import UserError
from dlcv.io.checkpoint import load_checkpoint, load_weights, save_checkpoint, save_weights


def test_checkpoint_round_trip_leaves_no_temporary_files(tmp_path):
    path = save_checkpoint({"w": torch.ones(2), "step": 3, "cfg": {"a": [1, 2]}}, tmp_path / "c.pt")
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_foreign_pickles_and_missing_files_are_user_errors(tmp_path):
    import argparse  # any class outside the weights-only allow-list stands in for foreign code

    torch.save({"obj": argparse.Namespace(a=1)}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="evil.pt"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="junk.safetensors"):
        load_weights(tmp_path / "junk.safetensors")


def test_weights_carry_their_config(tmp_path):
    save_weights({"a": torch.arange(3.0)}, tmp_path / "m.safetensors", {"model": {"width": 4}})
    tensors, cfg = load_weights(tmp_path / "m.safetensors")
    assert torch.equal(tensors["a"], torch.arange(3.0)) and cfg == {"model": {"width": 4}}


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        weights = save_weights({"a": torch.zeros(2)}, tmp_path / "m.safetensors")
        checkpoint = save_checkpoint({"step": 1}, tmp_path / "c.pt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(weights.stat().st_mode) == mode
    assert stat.S_IMODE(checkpoint.stat().st_mode) == mode


class _Trap:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_messages_say_what_the_file_is_and_never_suggest_turning_the_safety_off(tmp_path):
    marker = tmp_path / "code_ran"
    torch.save({"w": torch.zeros(1), "x": _Trap(marker)}, tmp_path / "zip.pt")
    (tmp_path / "legacy.pt").write_bytes(pickle.dumps({"x": _Trap(marker)}, protocol=4))
    (tmp_path / "text.pt").write_text("hello\n")
    messages = {}
    for name in ("zip.pt", "legacy.pt", "text.pt"):
        with pytest.raises(UserError) as err:
            load_checkpoint(tmp_path / name)
        messages[name] = str(err.value)
    assert not marker.exists()
    assert "needs io.open to load" in messages["zip.pt"] and "needs io.open" in messages["legacy.pt"]
    assert "it is a text file, not a training checkpoint" in messages["text.pt"]
    assert all("weights_only" not in m and "\n" not in m for m in messages.values())
    with pytest.raises(UserError, match="expected a .safetensors model, but it is a zip archive"):
        load_weights(tmp_path / "zip.pt", expected="a .safetensors model")


def _dead_pid() -> int:
    """The PID of a process that has ended (a child started and waited for)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_crashed_writes_are_removed_and_nothing_else(tmp_path):
    from dlcv.io.checkpoint import remove_stale_temporaries, temporary_path

    dead, alive = _dead_pid(), os.getppid()  # the parent (pytest's runner) is running
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "deeper").mkdir()
    stale = [
        temporary_path(tmp_path / "checkpoint.pt", dead),
        temporary_path(tmp_path / "unet.pt", dead),
        temporary_path(tmp_path / "samples" / "step_0000010.png", dead),
        temporary_path(tmp_path / "metrics.jsonl"),  # this process's own: never in use at a start
    ]
    kept = [
        temporary_path(tmp_path / "model.safetensors", alive),  # a live writer's
        temporary_path(tmp_path / "samples" / "deeper" / "x.pt", dead),  # beyond the depth
        tmp_path / "checkpoint.pt.tmp123",
        tmp_path / ".notes.tmp",
        tmp_path / ".x.tmp12a",
        tmp_path / "checkpoint.pt",
        tmp_path / "keep.txt",
    ]
    for path in stale + kept:
        path.write_bytes(b"half a file")
    folder = temporary_path(tmp_path / "ckpts", dead)
    folder.mkdir()  # a folder of that name: not ours to remove
    link = temporary_path(tmp_path / "link.pt", dead)
    link.symlink_to(tmp_path / "keep.txt")
    assert temporary_path(tmp_path / "c.pt").name == f".c.pt.tmp{os.getpid()}"

    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept) and folder.is_dir() and link.is_symlink()


def test_save_text_is_atomic_and_leaves_no_temporary(tmp_path):
    from dlcv.io.checkpoint import save_text

    path = save_text("a\nb\n", tmp_path / "metrics.jsonl")
    assert path.read_text() == "a\nb\n" and [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


_STATE = {"w": torch.randn(4096), "step": 3}  # 16 kB: more than the disks below hold


@pytest.mark.parametrize("kind", ["checkpoint", "weights", "text"])
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch, kind):
    """torch.save reports a failed write as a RuntimeError without the reason, safetensors in
    its message: each becomes the same one line, and neither a partial file nor its temporary
    stays (nor does the file it would have replaced change)."""
    from safetensors import SafetensorError

    from dlcv.io import checkpoint
    from dlcv.io.checkpoint import save_text
    from tests.disk import FullFile

    path = tmp_path / "out.bin"
    path.write_bytes(b"the previous version")
    if kind == "checkpoint":
        monkeypatch.setattr(checkpoint, "open", lambda p, mode: FullFile(p, room=100), raising=False)
        write = lambda: save_checkpoint(_STATE, path)  # noqa: E731
    elif kind == "weights":

        def full(tensors, filename, metadata=None):
            FullFile(filename, room=10).close()  # what the disk took
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

        monkeypatch.setattr(checkpoint, "save_file", full)
        write = lambda: save_weights({"w": _STATE["w"]}, path)  # noqa: E731
    else:
        monkeypatch.setattr(
            checkpoint.Path,
            "write_text",
            lambda self, text, encoding=None: FullFile(self, room=3).write(text.encode()),
        )
        write = lambda: save_text("x" * 1000, path)  # noqa: E731
    with pytest.raises(UserError, match=r"^cannot write .*out\.bin: no space left on the device; free some"):
        write()
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    assert path.read_bytes() == b"the previous version"


def test_checkpoints_and_weights_on_a_really_full_file_system(tmp_path):
    from tests.disk import tiny_filesystem

    small = tmp_path / "small"
    with tiny_filesystem(small, "8k") as mounted:
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (not root)")
        with pytest.raises(UserError, match=r"checkpoint\.pt: no space left on the device"):
            save_checkpoint(_STATE, small / "checkpoint.pt")
        with pytest.raises(UserError, match=r"model\.safetensors: no space left on the device"):
            save_weights({"w": _STATE["w"]}, small / "model.safetensors")
        assert list(small.iterdir()) == []


def test_a_link_in_place_of_a_checkpoint_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("mine")
    (tmp_path / "out").mkdir()
    for name in ("checkpoint.pt", "model.safetensors", f".checkpoint.pt.tmp{os.getpid()}"):
        (tmp_path / "out" / name).symlink_to(outside)  # the last where the temporary goes
    save_checkpoint(_STATE, tmp_path / "out" / "checkpoint.pt")
    save_weights({"w": _STATE["w"]}, tmp_path / "out" / "model.safetensors")
    assert outside.read_text() == "mine"
    assert load_checkpoint(tmp_path / "out" / "checkpoint.pt")["step"] == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["checkpoint.pt", "model.safetensors"]
    assert not any(p.is_symlink() for p in (tmp_path / "out").iterdir())
