"""Problem 1's report figures from a trained model.

    python PB1/report.py --out-dir figures/pb1 [--ckpt checkpoints/pb1/model.safetensors]

For each dataset writes {dataset}_grid.png (10x10: rows digits 0-9, columns
different noises) and {dataset}_reverse_process.png (the first "0" at 6
timesteps, from pure noise to the result), sampled with the settings hw2_1.sh
uses for the same model (its config's, or the flags given).
"""

from __future__ import annotations

import argparse

from dlcv.cli import run
from dlcv.digits.figures import report_figures
from dlcv.digits.model import CKPT_ENV, DEFAULT_CKPT
from dlcv.digits.sampling import add_sample_flags, sample_request


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", required=True, help="folder for the PNG figures")
    p.add_argument(
        "--ckpt", help=f"model file (default: ${CKPT_ENV}, else {DEFAULT_CKPT}, else the shipped model)"
    )
    add_sample_flags(p)
    p.add_argument("--scale", type=int, default=4, help="upscale factor of the 28x28 images (%(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    paths = report_figures(
        args.out_dir,
        args.ckpt,
        request=sample_request(args),
        scale=args.scale,
        seed=args.seed,
        device=args.device,
    )
    for path in paths:
        print(path)


if __name__ == "__main__":
    run(main)
