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
import math
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm

from dlcv.cli import UserError, check_batch_size, existing_dir, run
from dlcv.diffusion import NoiseSchedule, diffusion_loss
from dlcv.diffusion.driver import constant_eps, sample_batches
from dlcv.faces.unet import DOWN_FACTOR, FaceUNet
from dlcv.io.checkpoint import save_checkpoint, save_weights
from dlcv.io.images import list_images, load_rgb, minmax_to_uint8, save_grid
from dlcv.runtime import seed_everything
from dlcv.training import TrainConfig, train

STATE_DICT = "unet.pt"


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
    p.add_argument("--steps", type=int,
                   help="optimiser steps (default: 100000, or no cap with --time-budget)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32, help="images per step and process")
    p.add_argument("--lr", type=float, default=2e-4, help="AdamW learning rate (cosine decay)")
    p.add_argument("--warmup", type=int, default=1000, help="linear warm-up steps")
    p.add_argument("--ema", type=float, default=0.9999, help="EMA decay (0 = no EMA)")
    p.add_argument("--limit", type=int, help="use at most N images (quick runs)")
    p.add_argument("--log-every", type=int, default=50, help="steps between metric lines")
    p.add_argument("--ckpt-every", type=int, default=1000, help="steps between checkpoints")
    p.add_argument("--sample-every", type=int, default=0, help="steps between sample grids (0: at the end)")
    p.add_argument("--sample-steps", type=int, default=50, help="DDIM steps of the sample grids")
    p.add_argument("--time-budget", type=float,
                   help="seconds: the budget decides the length (re-planned as it goes; "
                   "--steps caps it)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument("--overwrite", action="store_true",
                   help="start again in an --out that holds another run (its checkpoint and metrics "
                   "are deleted, its other files replaced as this run writes them)")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    p.add_argument("--seed", type=int, default=0, help="seeds data order, noise and samples")
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA too (default: the card's half type)")
    return p


def load_image_folder(folder: str | Path, size: int, limit: int | None = None) -> torch.Tensor:
    """Every image in ``folder`` (sorted), resized to ``size`` x ``size``: uint8 (N, 3, S, S)."""
    paths = list_images(existing_dir(folder, "--data folder"))[:limit]
    if not paths:
        raise UserError(f"--data folder {folder} contains no images")
    images = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    for i, path in enumerate(tqdm(paths, desc="loading images", leave=False)):
        images[i] = load_rgb(path, size)
    return images


def export(model: torch.nn.Module, out_dir: Path, config: dict) -> None:
    """Write the inference weights: ``unet.pt`` (plain state dict) and ``unet.safetensors``."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_checkpoint(state, out_dir / STATE_DICT)
    save_weights(state, out_dir / "unet.safetensors", config)


def _is_main_process() -> bool:
    """False on the non-zero ranks of a ``torchrun`` launch (they stay quiet)."""
    return int(os.environ.get("RANK", "0")) == 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    say = print if _is_main_process() else (lambda *a, **k: None)
    if args.image_size < DOWN_FACTOR or args.image_size % DOWN_FACTOR:
        raise UserError(f"--image-size must be a positive multiple of {DOWN_FACTOR}")
    if args.width < 2 or args.width % 2:
        raise UserError(f"--width must be a positive even number of channels, got {args.width}")
    if args.steps is None and args.time_budget is None:
        args.steps = 100_000
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be positive, got {args.steps}")
    check_batch_size(args.batch_size)
    if not 0 <= args.ema < 1:
        raise UserError("--ema must be in [0, 1)")
    if not 1 <= args.sample_steps <= 1000:
        raise UserError("--sample-steps must be in 1..1000")
    if args.log_every < 1 or args.ckpt_every < 0 or args.sample_every < 0 or args.warmup < 0:
        raise UserError("--log-every must be positive; --ckpt-every, --sample-every, --warmup not negative")
    if not (math.isfinite(args.lr) and args.lr > 0) or not 0 <= args.dropout < 1:
        raise UserError("--lr must be a positive number and --dropout in [0, 1)")
    if args.time_budget is not None and not (math.isfinite(args.time_budget) and args.time_budget > 0):
        raise UserError(f"--time-budget must be a positive number of seconds, got {args.time_budget}")
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be positive")
    images = load_image_folder(args.data, args.image_size, args.limit)
    say(f"data: {len(images)} images of {args.image_size}x{args.image_size} from {args.data}")

    seed_everything(args.seed)  # the initial weights repeat for a seed
    model = FaceUNet(args.width, dropout=args.dropout)
    schedule = NoiseSchedule.linear()
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    say(f"model: FaceUNet width {args.width}, {millions:.2f}M parameters")

    def next_batch(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(images), (args.batch_size,), generator=generator)
        batch = images[index]
        flip = torch.rand(args.batch_size, generator=generator) < 0.5
        return torch.where(flip[:, None, None, None], batch.flip(-1), batch)

    def loss_fn(net: torch.nn.Module, batch: torch.Tensor, generator: torch.Generator):
        x0 = batch.float() / 127.5 - 1.0
        if x0.device.type == "cuda":
            x0 = x0.contiguous(memory_format=torch.channels_last)
        return diffusion_loss(net, x0, schedule, generator)

    size = args.image_size
    preview = torch.randn(16, 3, size, size, generator=torch.Generator().manual_seed(args.seed))

    def on_sample(ema_model: torch.nn.Module, step: int) -> None:
        device = next(ema_model.parameters()).device
        eps = constant_eps(lambda x, t: ema_model(x, t).float())
        x = sample_batches(eps, preview, schedule, steps=args.sample_steps, device=device)
        save_grid(minmax_to_uint8(x), Path(args.out) / "samples" / f"step_{step:07d}.png", nrow=4)

    config = {"model": "FaceUNet", "base_channels": args.width, "image_size": args.image_size}
    cfg = TrainConfig(
        out_dir=Path(args.out),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup,
        ema_decay=args.ema or None,
        log_every=args.log_every,
        sample_every=args.sample_every,
        ckpt_every=args.ckpt_every,
        seed=args.seed,
        mixed_precision=not args.no_amp,
        resume=args.resume,
        overwrite=args.overwrite,
        device=args.device,
        time_budget=args.time_budget,
    )
    train(
        model,
        loss_fn,
        next_batch,
        cfg,
        on_sample=on_sample,
        export=lambda m, out, step: export(m, out, config),
        config=config,
    )
    say(f"state dict written to {Path(args.out) / STATE_DICT}")


if __name__ == "__main__":
    run(main)
