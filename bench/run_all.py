"""`make bench`: run every bench/bench_*.py with its defaults and print their figures.

    python bench/run_all.py [--skip NAME ...] [--only NAME ...]

Each benchmark prints the device it ran on and ratios against a reference
measured in the same run. The real-digits run (bench_pb1_real_digits) trains the
demo recipe for 30 slow-machine minutes (about 12 minutes on a fast 2-core CPU)
and grades it ten times; skip it with --skip pb1_real_digits.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip", nargs="*", default=[], help="benchmark names to leave out (without bench_)")
    p.add_argument("--only", nargs="*", default=[], help="run just these")
    args = p.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    failed = []
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        if name in args.skip or (args.only and name not in args.only):
            continue
        print(f"\n==== {script.name}", flush=True)
        start = time.perf_counter()
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(
            f"==== {script.name}: {'ok' if code == 0 else f'FAILED ({code})'}, "
            f"{time.perf_counter() - start:.0f}s",
            flush=True,
        )
        if code:
            failed.append(script.name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
