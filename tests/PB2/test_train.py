"""``PB2/train.py`` as a user runs it: its flags are the job's settings (``dlcv.faces.training``,
tested in tests/faces/test_training.py), a bad one is one line naming the flag."""

from __future__ import annotations

from ..conftest import run_script


def test_bad_flags_are_one_line_naming_the_flag(tmp_path):
    out = str(tmp_path / "o")
    for flags, line in (
        (["--image-size", "40"], "error: --image-size must be a positive multiple of 32"),
        (["--ema", "1"], "error: --ema must be in [0, 1) (0, None: no EMA), got 1.0"),
        (["--warmup", "-1"], "error: --warmup must be >= 0, got -1"),
    ):
        result = run_script("PB2/train.py", "--data", str(tmp_path), "--out", out, *flags)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [line]
    assert not (tmp_path / "o").exists()
