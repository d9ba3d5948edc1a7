"""Train Problem 1's class-conditional DDPM on MNIST-M + SVHN (20 joint classes).

    python PB1/train.py --data hw2_data/digits --out checkpoints/pb1
    torchrun --nnodes 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:0 --local-addr 127.0.0.1 \\
        --nproc_per_node 4 PB1/train.py --data hw2_data/digits     # data-parallel, one machine
    python PB1/train.py --config demo --set train.steps=500            # quick CPU run

Writes to --out: checkpoint.pt (resumable), model.safetensors (EMA weights +
config: what hw2_1.sh loads), metrics.jsonl and samples/step_*.png (and, with
--keep-models, models/step_*.safetensors).
"""

from __future__ import annotations

import argparse
import math
import shutil
from dataclasses import fields
from pathlib import Path

import torch
from omegaconf import OmegaConf

from dlcv.cli import UserError, run
from dlcv.data.digits import load_joint_digits
from dlcv.diffusion import diffusion_loss
from dlcv.digits.model import (
    PRESETS,
    build_model,
    build_objective,
    build_schedule,
    export_model,
    load_config,
    noise_predictor,
)
from dlcv.digits.sampling import sample_labels
from dlcv.io.checkpoint import atomic_write
from dlcv.io.images import save_grid
from dlcv.runtime import seed_everything
from dlcv.training import TrainConfig, train

#: Library arguments this command line exposes under another flag (see dlcv.cli.ArgumentError).
FLAGS = {"overrides": "--set"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="hw2_data/digits", help="folder with mnistm/ and svhn/ (course layout)")
    p.add_argument("--out", default="checkpoints/pb1", help="output folder (default: %(default)s)")
    p.add_argument("--config", default="default", help=f"preset ({', '.join(PRESETS)}) or a YAML file")
    p.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. train.lr=1e-4"
    )
    p.add_argument("--steps", type=int, help="shortcut for --set train.steps=N")
    p.add_argument("--batch-size", type=int, help="per process; shortcut for train.batch_size")
    p.add_argument("--time-budget", type=float,
                   help="seconds: the budget decides the run's length, re-planned from the measured "
                   "speed as it goes (the cosine follows); the preset's steps do not cap it, "
                   "--steps given too does")  # fmt: skip
    p.add_argument("--limit", type=int, help="use at most N training images per dataset (quick runs)")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument("--overwrite", action="store_true",
                   help="start again in an --out that holds another run (its checkpoint and metrics "
                   "are deleted, its other files replaced as this run writes them)")  # fmt: skip
    p.add_argument("--keep-models", action="store_true",
                   help="also keep the model of every checkpoint (train.ckpt_every) as "
                   "models/step_N.safetensors")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-amp", action="store_true",
                   help="train in fp32 on CUDA (default: mixed precision, bf16 from compute "
                   "capability 8.0, fp16 with loss scaling below)")  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = list(args.set)
    if args.steps is not None:
        overrides.append(f"train.steps={args.steps}")
    if args.batch_size is not None:
        overrides.append(f"train.batch_size={args.batch_size}")
    cfg = load_config(args.config, overrides)
    tc = cfg.train
    if args.time_budget is not None and not (math.isfinite(args.time_budget) and args.time_budget > 0):
        raise UserError(f"--time-budget must be a positive number of seconds, got {args.time_budget}")

    # Data: both datasets preloaded once as uint8, joint labels 0-19.
    images, labels = load_joint_digits(args.data, "train", size=cfg.model.get("image_size", 28),
                                       limit_per_dataset=args.limit)  # fmt: skip
    print(f"data: {len(images)} images from {args.data}")

    seed_everything(args.seed)  # the network's initial weights: the same seed, the same model
    model = build_model(cfg)
    if hasattr(model, "fit_basis"):  # a latent model: its (linear) encoder comes from the data
        kept = model.fit_basis(images, seed=args.seed)
        print(f"PCA: {model.config.components} components keep {kept:.1%} of the pixel variance")
    schedule = build_schedule(cfg)
    objective = build_objective(cfg)
    null_class = model.null_class
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")

    # train.balanced: every one of the 20 classes equally often (SVHN's digits are unbalanced 3:1)
    weights = (1.0 / torch.bincount(labels).float())[labels] if tc.get("balanced", False) else None

    def next_batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if weights is None:
            index = torch.randint(len(images), (tc.batch_size,), generator=generator)
        else:
            index = torch.multinomial(weights, tc.batch_size, replacement=True, generator=generator)
        return images[index], labels[index]

    def loss_fn(net: torch.nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
        x_u8, y = batch
        # the diffusion's space: the images themselves, or their latents (model.encode)
        x0 = model.encode((x_u8.float() / 127.5 - 1.0).contiguous(memory_format=torch.channels_last))
        # Label dropout teaches the same network the unconditional model (null class).
        drop = (torch.rand(y.shape, generator=generator) < tc.p_uncond).to(y.device)
        y = torch.where(drop, torch.full_like(y, null_class), y)
        return diffusion_loss(lambda x, t: net(x, t, y), x0, schedule, generator, objective)

    samples_dir = Path(args.out) / "samples"
    preview_labels = torch.arange(20).repeat_interleave(4)  # 4 of each class, rows of 8

    def on_sample(ema_model: torch.nn.Module, step: int) -> None:
        s = cfg.sample
        grid = sample_labels(noise_predictor(ema_model, cfg), schedule, preview_labels,
                             sampler=s.sampler if s.sampler != "ddpm" else "ddim", steps=min(s.steps, 50),
                             guidance=s.guidance, seed=args.seed, progress=False)  # fmt: skip
        save_grid(grid, samples_dir / f"step_{step:07d}.png", nrow=8)

    def export(ema_model: torch.nn.Module, out: Path, step: int) -> None:
        path = export_model(ema_model, out, cfg)
        if args.keep_models:  # one model per checkpoint, e.g. to grade a run's progress
            copy = out / "models" / f"step_{step:07d}.safetensors"  # atomically: a link there is replaced
            atomic_write(copy, lambda tmp: shutil.copyfile(path, tmp))

    # The config's train section names TrainConfig's fields; the command line adds the rest.
    optim = {f.name: tc[f.name] for f in fields(TrainConfig) if f.name in tc}
    if args.time_budget is not None and args.steps is None:
        optim["steps"] = None  # the budget alone decides the length
    train_cfg = TrainConfig(
        **optim,
        out_dir=Path(args.out),
        seed=args.seed,
        mixed_precision=not args.no_amp,
        resume=args.resume,
        overwrite=args.overwrite,
        device=args.device,
        time_budget=args.time_budget,
        channels_last=True,  # faster convolutions on CPUs too (about 8% for training)
    )
    train(
        model,
        loss_fn,
        next_batch,
        train_cfg,
        on_sample=on_sample,
        export=export,
        config=OmegaConf.to_container(cfg),
    )
    print(f"model written to {Path(args.out) / 'model.safetensors'}")


if __name__ == "__main__":
    run(main, FLAGS)
