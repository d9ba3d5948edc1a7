"""bench/reference_speed.py: the reference network's speed on this machine, from the command line."""

from __future__ import annotations

from ..conftest import run_script


def test_a_thread_count_below_one_is_one_error_line():
    result = run_script("bench/reference_speed.py", "0", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: THREADS must be >= 1, got 0"
