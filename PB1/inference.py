"""Generate Problem 1's images: 50 per digit per dataset, as the course grader reads them.

    python PB1/inference.py --out-dir OUT [--ckpt checkpoints/pb1/model.safetensors]

Writes OUT/mnistm/{digit}_{idx:03d}.png and OUT/svhn/{digit}_{idx:03d}.png
(idx 001..050), 28x28 RGB. The model is --ckpt, else $PB1_CKPT, else
checkpoints/pb1/model.safetensors, else the model shipped with the repository
(dlcv/assets/pb1/, trained on real digits; see its MODEL_CARD.md). Sampler
settings default to those stored with the model (its config's `sample` section).
"""

from __future__ import annotations

import argparse
import time

from dlcv.cli import run
from dlcv.digits.course import N_PER_DIGIT, hw2_1
from dlcv.digits.model import CKPT_ENV, DEFAULT_CKPT
from dlcv.digits.sampling import add_sample_flags, sample_request


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", required=True, help="output folder (mnistm/ and svhn/ are created in it)")
    p.add_argument(
        "--ckpt", help=f"model file (default: ${CKPT_ENV}, else {DEFAULT_CKPT}, else the shipped model)"
    )
    add_sample_flags(p)
    p.add_argument(
        "--n-per-digit", type=int, default=N_PER_DIGIT, help="images per digit per dataset (%(default)s)"
    )
    p.add_argument("--batch-size", type=int, default=1000, help="images per forward pass (%(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    paths = hw2_1(
        args.out_dir,
        args.ckpt,
        request=sample_request(args),
        n_per_digit=args.n_per_digit,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
    )
    print(f"wrote {len(paths)} images to {args.out_dir} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    run(main)
