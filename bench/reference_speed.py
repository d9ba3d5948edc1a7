"""Measure the fixed reference network of the Problem 1 benches on this machine.

    python bench/reference_speed.py [THREADS]            (default: 2 threads)
    python bench/reference_speed.py --record [--out FILE]

Prints the training steps/s of the reference network (:data:`dlcv_bench.pb1.REFERENCE_CONFIG`,
the first demo recipe's network, batch 32) here, the best of two timings after an untimed
warm-up, and how many times the slow machine's speed
(:data:`dlcv_bench.pb1.SLOW_MACHINE_STEPS_PER_S`) that is; see :mod:`dlcv_bench.pb1`.
``--record`` appends the measurement (speed, both timings, threads, the machine, commit, date and
the load average before it: a busy machine measures slow) to ``docs/results/reference_speeds.json``,
the record the slow-machine constant is checked against. It can only measure this machine.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dlcv.cli import UserError, run
from dlcv_bench.pb1 import (
    REFERENCE_SPEEDS,
    SLOW_MACHINE_STEPS_PER_S,
    provenance,
    record_reference_speed,
    reference_speed,
)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("threads", nargs="?", type=int, default=2, help="CPU threads (default: %(default)s)")
    p.add_argument("--record", action="store_true", help="append the measurement to --out")
    p.add_argument("--out", type=Path, default=REFERENCE_SPEEDS, help="the record (default: %(default)s)")
    args = p.parse_args(argv)
    if args.threads < 1:
        raise UserError(f"THREADS must be >= 1, got {args.threads}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    reference_speed(args.threads)  # warm-up, untimed
    timings = [reference_speed(args.threads), reference_speed(args.threads)]
    speed = max(timings)
    print(
        f"reference network: {speed:.2f} steps/s here ({args.threads} threads, best of two); the slow "
        f"machine of SLOW_MACHINE_STEPS_PER_S: {SLOW_MACHINE_STEPS_PER_S}, so this machine is "
        f"{speed / SLOW_MACHINE_STEPS_PER_S:.1f}x it"
    )
    if args.record:
        entry = {
            **provenance(),
            "threads": args.threads,
            "steps_per_s": round(speed, 3),
            "timings": [round(t, 3) for t in timings],
            "load_average_1min": load,
        }
        measurements = record_reference_speed(entry, args.out)
        print(f"recorded in {args.out} ({len(measurements)} measurement(s))")


if __name__ == "__main__":
    run(main)
