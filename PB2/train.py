"""Train the face UNet architecture as an unconditional DDPM on a folder of images.

    python PB2/train.py --data my_faces/ --out checkpoints/pb2 --image-size 64 --width 64
    python PB2/train.py --data my_faces/ --out checkpoints/pb2 --resume        # continue
    torchrun --nnodes 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:0 --local-addr 127.0.0.1 \\
        --nproc_per_node 4 PB2/train.py --data my_faces/ --out checkpoints/pb2  # data-parallel

Objective: DDPM's epsilon loss (Ho et al. 2020, Eq. 14) with the course schedule
(1000 steps, betas 1e-4..2e-2). Images are read once into memory as uint8,
resized to --image-size (a multiple of 32) and randomly flipped left-right.

Writes to --out: checkpoint.pt (resumable), unet.pt (the EMA weights as a plain
state dict: ``bash hw2_2.sh NOISE_DIR OUT_DIR --out/unet.pt`` loads it, any width),
unet.safetensors (the same weights), metrics.jsonl and samples/step_*.png
(DDIM samples of fixed noises).
"""

from __future__ import annotations

import argparse
import os

from dlcv.cli import PRECISIONS, run
from dlcv.faces.training import FLAGS, FaceTrainJob, train_faces


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder of training images (png/jpg/...)")
    p.add_argument("--out", default="checkpoints/pb2", help="output folder (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=64, help="train at N x N, a multiple of 32 (default 64)")
    p.add_argument(
        "--width",
        type=int,
        default=128,
        help="base channels: 128 = the course UNet (113.7M parameters); 64 is ~4x smaller and faster",
    )
    p.add_argument("--dropout", type=float, default=0.1, help="dropout in the residual blocks")
    p.add_argument(
        "--steps", type=int, help="optimiser steps (default: 100000, or no cap with --time-budget)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="images per step and process")
    p.add_argument("--lr", type=float, default=2e-4, help="AdamW learning rate (cosine decay)")
    p.add_argument("--warmup", type=int, default=1000, help="linear warm-up steps")
    p.add_argument("--ema", type=float, default=0.9999, help="EMA decay (0 = no EMA)")
    p.add_argument("--limit", type=int, help="use at most N images (quick runs)")
    p.add_argument("--log-every", type=int, default=50, help="steps between metric lines")
    p.add_argument("--ckpt-every", type=int, default=1000, help="steps between checkpoints")
    p.add_argument("--sample-every", type=int, default=0, help="steps between sample grids (0: at the end)")
    p.add_argument("--sample-steps", type=int, default=50, help="DDIM steps of the sample grids")
    p.add_argument(
        "--time-budget",
        type=float,
        help="seconds: the budget decides the length (re-planned as it goes; --steps caps it)",
    )
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in an --out that holds another run (its checkpoint and metrics "
        "are deleted, its other files replaced as this run writes them)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    p.add_argument("--seed", type=int, default=0, help="seeds data order, noise and samples")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto (default): mixed precision on CUDA in the card's half type (bf16 from compute "
        "capability 8.0, fp16 with loss scaling below), fp32 on the CPU; fp32: no mixed "
        "precision",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    job = FaceTrainJob(**vars(args))  # the flags are the job's fields
    path = train_faces(job)
    if int(os.environ.get("RANK", "0")) == 0:  # the other ranks of a torchrun launch stay quiet
        print(f"state dict written to {path}")


if __name__ == "__main__":
    run(main, FLAGS)
