"""dlcv.cli: what every entry point does with a full disk, unwritable standard output, links
in output folders and hostile JSON."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from dlcv.cli import UserError, parse_json, refuse_links, run

from .conftest import REPO

WARNING = (
    "warning: cannot write to standard output (No space left on device): carrying on without "
    "printing progress"
)


class BrokenStdout:
    """Standard output on a full device: every write and flush fails."""

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_unwritable_stdout_warns_once_and_the_work_goes_on(tmp_path, monkeypatch, capsys):
    def main():
        for i in range(3):
            print(f"step {i}", flush=True)
            (tmp_path / f"{i}.txt").write_text("done")

    monkeypatch.setattr(sys, "stdout", BrokenStdout())
    with pytest.raises(SystemExit) as exit_info:
        run(main)
    assert exit_info.value.code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.txt", "1.txt", "2.txt"]
    lines = capsys.readouterr().err.splitlines()
    assert lines == [WARNING]


@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="no /dev/full")
def test_stdout_to_dev_full_exits_0_without_a_traceback(tmp_path):
    code = (
        "from pathlib import Path; from dlcv.cli import run\n"
        "def main():\n"
        "    print('x' * 100_000)\n"  # more than the buffer: the write itself fails
        f"    Path({str(tmp_path / 'out.txt')!r}).write_text('done')\n"
        "    print('the end')\n"  # still buffered at exit
        "run(main)\n"
    )
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60
        )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.txt").read_text() == "done"
    assert result.stderr.splitlines() == [WARNING]


def test_a_disk_error_no_helper_caught_is_still_one_line(capsys):
    def main():
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/report.json")

    with pytest.raises(SystemExit) as exit_info:
        run(main)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "error: cannot write /data/out/report.json: no space left on the "
        "device; free some space or choose another folder\n"
    )


def test_other_os_errors_are_not_hidden():
    def main():
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output"):
        run(main)


def test_deep_json_is_one_line_not_a_recursion_error():
    with pytest.raises(UserError, match=r"deep\.json is not a usable JSON file: it is nested 100000 levels"):
        parse_json("[" * 100_000 + "]" * 100_000, "deep.json")
    assert parse_json('{"a": ["[[[", {"b": "\\"{"}]}', "x") == {"a": ["[[[", {"b": '"{'}]}
    with pytest.raises(UserError, match=r"x is not valid JSON"):
        parse_json("{", "x")


def test_links_inside_an_output_folder_are_refused_but_the_folder_may_be_one(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "real")  # the folder the user chose: fine
    refuse_links(tmp_path / "out", ["svhn/0_001.png", "mnistm"])
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "real" / "svhn").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UserError, match=r"output .*out/svhn is a symbolic link \(to .*elsewhere\): outputs"):
        refuse_links(tmp_path / "out", ["mnistm/0_001.png", "svhn/0_001.png"])
    (tmp_path / "real" / "svhn").unlink()
    (tmp_path / "real" / "svhn").mkdir()
    (tmp_path / "real" / "svhn" / "0_001.png").symlink_to(tmp_path / "nowhere")  # dangling: refused too
    with pytest.raises(UserError, match=r"svhn/0_001\.png is a symbolic link"):
        refuse_links(tmp_path / "out", ["svhn/0_001.png"])


def test_check_batch_size_refuses_absurd_sizes_naming_the_flag():
    from dlcv.cli import MAX_BATCH_SIZE, check_batch_size

    assert check_batch_size(1) == 1 and check_batch_size(MAX_BATCH_SIZE) == MAX_BATCH_SIZE
    assert check_batch_size(0, zero="all") == 0
    for value in (0, -1, MAX_BATCH_SIZE + 1, 10**9, True):
        with pytest.raises(UserError, match=r"^--bs must be 1-65,536, got "):
            check_batch_size(value, "--bs")
    with pytest.raises(UserError, match=r"^--batch-size must be 0 \(all\) or 1-65,536, got -1$"):
        check_batch_size(-1, zero="all")
