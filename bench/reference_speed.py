"""Measure the fixed reference network of the Problem 1 benches on this machine.

    python bench/reference_speed.py [THREADS]        (default: 2 threads)

Prints the training steps/s of the reference network (:data:`dlcv_bench.pb1.REFERENCE_CONFIG`,
the first demo recipe's network, batch 32) here, the best of two timings after an untimed
warm-up, and how many times the slow machine's speed
(:data:`dlcv_bench.pb1.SLOW_MACHINE_STEPS_PER_S`) that is; see :mod:`dlcv_bench.pb1`.
"""

from __future__ import annotations

import argparse

from dlcv.cli import UserError, run
from dlcv_bench.pb1 import SLOW_MACHINE_STEPS_PER_S, reference_speed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("threads", nargs="?", type=int, default=2, help="CPU threads (default: %(default)s)")
    args = p.parse_args(argv)
    if args.threads < 1:
        raise UserError(f"THREADS must be >= 1, got {args.threads}")
    reference_speed(args.threads)  # warm-up, untimed
    speed = max(reference_speed(args.threads), reference_speed(args.threads))
    print(
        f"reference network: {speed:.2f} steps/s here ({args.threads} threads, best of two); the slow "
        f"machine of SLOW_MACHINE_STEPS_PER_S: {SLOW_MACHINE_STEPS_PER_S}, so this machine is "
        f"{speed / SLOW_MACHINE_STEPS_PER_S:.1f}x it"
    )


if __name__ == "__main__":
    run(main)
