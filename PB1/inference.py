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
from pathlib import Path

from dlcv.cli import UserError, check_batch_size, run
from dlcv.digits.model import CKPT_ENV, DEFAULT_CKPT, build_schedule, load_model, resolve_checkpoint
from dlcv.digits.sampling import (
    SAMPLERS,
    SampleSettings,
    check_sampling_options,
    prepare_course_folders,
    sample_course_set,
    write_course_outputs,
)
from dlcv.runtime import configure_backends, pick_device


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", required=True, help="output folder (mnistm/ and svhn/ are created in it)")
    p.add_argument("--ckpt",
                   help=f"model file (default: ${CKPT_ENV}, else {DEFAULT_CKPT}, else the shipped model)")
    p.add_argument("--sampler", choices=SAMPLERS,
                   help="ddim, dpm++ (DPM-Solver++(2M): as good in fewer steps) or ddpm (all 1000 steps); "
                   "default: the model's")  # fmt: skip
    p.add_argument("--steps", type=int, help="DDIM / DPM-Solver++ steps (default: the model's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale; 1 = no guidance")
    p.add_argument("--eta", type=float, help="fresh noise of DDIM / DPM-Solver++: 0 = deterministic (ODE), "
                   "1 = DDPM-like (SDE); default: the model's")  # fmt: skip
    p.add_argument("--n-per-digit", type=int, default=50, help="images per digit per dataset (%(default)s)")
    p.add_argument("--batch-size", type=int, default=1000, help="images per forward pass (%(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not 1 <= args.n_per_digit <= 999:
        raise UserError(f"--n-per-digit must be 1-999, got {args.n_per_digit}")
    check_batch_size(args.batch_size)
    check_sampling_options(args.steps, args.guidance, args.eta)
    if Path(args.out_dir).exists() and not Path(args.out_dir).is_dir():
        raise UserError(f"--out-dir {args.out_dir} exists and is not a folder")
    device = pick_device(args.device)
    configure_backends(device)
    path = resolve_checkpoint(args.ckpt)
    model, cfg = load_model(path, device)
    settings = SampleSettings.resolve(cfg, sampler=args.sampler, steps=args.steps, guidance=args.guidance,
                                      eta=args.eta)  # fmt: skip
    prepare_course_folders(args.out_dir, args.n_per_digit)  # before the sampling: fail or warn now
    print(f"{path}: {settings.describe()}, on {device}")
    start = time.perf_counter()
    images = sample_course_set(model, build_schedule(cfg), args.n_per_digit, **settings.as_kwargs(),
                               seed=args.seed, batch_size=args.batch_size)  # fmt: skip
    paths = write_course_outputs(images, args.out_dir, args.n_per_digit)
    print(f"wrote {len(paths)} images to {args.out_dir} in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    run(main)
