"""bench/bench_ti_learns.py (``make demo-ti``): its flags; the check itself is tested in
tests/dlcv_bench/digit_world/test_check.py."""

from __future__ import annotations

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
