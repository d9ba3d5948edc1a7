"""How far the CPU recipe gets on real digits: graders and PB1 trained on digits_mini, then graded.

    python bench/bench_pb1_real_digits.py [--data ../shared/data/digits_mini] [--pb1-budget 600]

Runs the demo pipeline (scripts/demo.py) on real MNIST-M and SVHN in the course
layout instead of the synthetic set: trains the two digit graders (their held-out
accuracy on the data's test split is printed by the trainer), trains PB1 with the
demo preset for --pb1-budget seconds, generates the 1,000 images and grades them.
Everything is written to --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import demo  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "digits_mini"))
    p.add_argument("--out", default="bench_out/real_digits")
    p.add_argument("--pb1-budget", type=float, default=600, help="seconds of PB1 training (%(default)s)")
    p.add_argument("--classifier-budget", type=float, default=120, help="seconds per grader (%(default)s)")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    if not Path(args.data, "mnistm", "train.csv").is_file():
        sys.exit(f"error: no digits in the course layout at {args.data} (expected mnistm/train.csv)")
    demo.main(["--data", args.data, "--out", args.out, "--pb1-budget", str(args.pb1_budget),
               "--classifier-budget", str(args.classifier_budget), "--device", args.device])  # fmt: skip


if __name__ == "__main__":
    main()
