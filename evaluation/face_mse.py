"""Grade Problem 2: per-image MSE (uint8 RGB, 0-255) of OUT against GT, the mean, PASS/FAIL.

Usage: ``python evaluation/face_mse.py OUT_DIR GT_DIR`` (e.g. ``out hw2_data/face/GT``).
Each image of GT_DIR is compared with the image of the same file name in OUT_DIR
(after conversion of both to 8-bit RGB); the MSE is taken over the 0-255 values
of all pixels and channels. Exit status 0 when the mean MSE is below the pass
line, 1 when it is not, 2 on unusable input (a missing folder, a ground-truth
name with no output, sizes that differ). Output images without a ground truth
are named on stderr and ignored.
"""

from __future__ import annotations

import argparse
import math
import sys

from dlcv.cli import UserError, run
from dlcv.faces.mse import PASS_LINE, compare_folders


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out_dir", help="folder of generated images (00.png ...)")
    parser.add_argument("gt_dir", help="folder of ground-truth images with the same names")
    parser.add_argument(
        "--pass-line",
        type=float,
        default=PASS_LINE,
        help=f"a mean MSE below this passes (default: the course's {PASS_LINE:g})",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not (math.isfinite(args.pass_line) and args.pass_line > 0):
        raise UserError(f"--pass-line must be a positive number, got {args.pass_line}")
    report = compare_folders(args.out_dir, args.gt_dir, args.pass_line)
    if report.ignored:
        print(f"note: no ground truth for {', '.join(report.ignored)} (ignored)", file=sys.stderr)
    print("\n".join(report.lines()))
    if not report.passed:
        sys.exit(1)


if __name__ == "__main__":
    run(main)
