"""bench/reference_speed.py: the reference network's speed on this machine, its record, and the slow-machine
constant against the record."""

from __future__ import annotations

import json

from ..conftest import load_script, run_script


def test_a_thread_count_below_one_is_one_error_line():
    result = run_script("bench/reference_speed.py", "0", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: THREADS must be >= 1, got 0"


def test_the_slow_machine_constant_is_at_most_every_recorded_speed():
    """SLOW_MACHINE_STEPS_PER_S is the slowest idle 2-thread machine seen: no recorded 2-thread
    measurement of the reference network on an idle machine may be slower (a slower machine, once
    recorded, forces it down); a measurement on a busy machine does not count."""
    from dlcv_bench.pb1 import SLOW_MACHINE_STEPS_PER_S, measured_idle, recorded_reference_speeds

    assert measured_idle({"cpus": 2, "load_average_1min": 0.4})
    assert not measured_idle({"cpus": 2, "load_average_1min": 1.5})
    two_threads = [m for m in recorded_reference_speeds() if m["threads"] == 2 and measured_idle(m)]
    assert two_threads, "docs/results/reference_speeds.json records no idle 2-thread measurement"
    for m in two_threads:
        assert {"steps_per_s", "cpu", "cpus", "commit", "date", "command"} <= set(m)
        assert SLOW_MACHINE_STEPS_PER_S <= m["steps_per_s"], m


def test_record_appends_this_machines_measurement(tmp_path, monkeypatch):
    """--record appends the best of the two timings (after an untimed warm-up), the threads and the
    provenance to the record, keeping what was there (the measurement itself is stood in for)."""
    script = load_script("bench/reference_speed.py", "reference_speed_script")
    timings = iter([1.0, 4.0, 5.0, 2.0, 3.0, 6.0])
    monkeypatch.setattr(script, "reference_speed", lambda threads: next(timings))
    out = tmp_path / "speeds.json"
    script.main(["3", "--record", "--out", str(out)])
    script.main(["--record", "--out", str(out)])
    measurements = json.loads(out.read_text())["measurements"]
    assert [(m["threads"], m["steps_per_s"], m["timings"]) for m in measurements] == [
        (3, 5.0, [4.0, 5.0]),
        (2, 6.0, [3.0, 6.0]),
    ]
    assert measurements[0]["command"].startswith("python") and measurements[0]["cpus"] >= 1
