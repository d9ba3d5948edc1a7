"""Problem 2 inference (``hw2_2.sh``): DDIM-denoise every noise file with the face UNet.

Usage: ``python PB2/inference.py --noise-dir NOISE_DIR --out-dir OUT_DIR --unet UNet.pt``
writes ``OUT_DIR/<stem>.png`` for each ``NOISE_DIR/<stem>.pt`` (sorted), under the
course convention: 50 DDIM steps (981..1), eta 0, x0 clamped, per-image min-max.
"""

from __future__ import annotations

import argparse

import torch

from dlcv.cli import check_batch_size, run
from dlcv.faces.ddim import PRECISIONS, hw2_2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--noise-dir", required=True, help="folder of *.pt noises, each (1,3,H,W) or (3,H,W)")
    parser.add_argument("--out-dir", required=True, help="folder for <stem>.png (created)")
    parser.add_argument("--unet", required=True, help="the face UNet state dict (UNet.pt or .safetensors)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="noises per forward pass; 0 (default) = all at once (halved on CUDA out-of-memory)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto (default): fp32 on CPU, TF32 on CUDA (PyTorch's own default for cuDNN "
        "convolutions); fp32: TF32 off, exact fp32; fp16 / bf16: half-precision autocast "
        "(faster, less exact)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda:1, ...")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    check_batch_size(args.batch_size, zero="all")
    with torch.no_grad():
        paths = hw2_2(
            args.noise_dir,
            args.out_dir,
            args.unet,
            batch_size=args.batch_size or None,
            precision=args.precision,
            device=args.device,
            progress=not args.quiet,
        )
    print(f"wrote {len(paths)} images to {args.out_dir}")


if __name__ == "__main__":
    run(main)
