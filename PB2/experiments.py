"""Problem 2's report figures: the DDIM eta study and slerp / lerp interpolation of noises.

Face UNet (the course's UNet.pt and its noises):
    python PB2/experiments.py --unet hw2_data/face/UNet.pt --noise-dir hw2_data/face/noise --out-dir figs
Problem 1's digit model instead (no UNet.pt needed; noises drawn from --seed at the
model's image size, class-conditioned with classifier-free guidance as in PB1):
    python PB2/experiments.py --digit-ckpt checkpoints/pb1/model.safetensors --out-dir figs
    python PB2/experiments.py --digit-ckpt checkpoints/pb1 --out figs --steps 10   # quick CPU demo

Writes to --out-dir:
  eta_grid.png             rows eta = 0, 0.25, 0.5, 0.75, 1; columns the first four noises
  interpolation_slerp.png  DDIM (eta 0) of slerp(noise 0, noise 1, alpha), alpha = 0, 0.1, ..., 1
  interpolation_lerp.png   the same with linear interpolation
"""

from __future__ import annotations

import argparse
import contextlib
import math
from pathlib import Path

import torch

from dlcv.cli import UserError, check_batch_size, prepare_out_dir, run
from dlcv.digits.figures import digit_figure_job
from dlcv.faces.ddim import PRECISIONS, face_precision, precision_context
from dlcv.faces.figures import face_figure_job
from dlcv.figures import FigureJob, render_figures
from dlcv.runtime import pick_device, seed_everything

GRID_NOISES = 4


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--unet", help="face UNet state dict (UNet.pt or .safetensors); needs --noise-dir")
    src.add_argument("--digit-ckpt", help="PB1 model (model.safetensors or its folder) instead")
    p.add_argument(
        "--noise-dir",
        help="face noises (*.pt, sorted): the first 4 make the eta grid, the first 2 the strips",
    )
    p.add_argument(
        "--out-dir", "--out", dest="out_dir", required=True, help="folder for the three figures (created)"
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the eta > 0 noise and the digit model's noises")
    p.add_argument(
        "--steps",
        type=int,
        help="DDIM steps (default: the course's 50 for the face UNet, the config's sample.steps "
        "for a digit model; fewer is faster, e.g. 10 on a CPU)",
    )
    p.add_argument(
        "--labels",
        default="0,1,2,3",
        help="digit model: the four joint class labels (dataset * 10 + digit) of the eta grid's "
        "columns (default 0,1,2,3: MNIST-M digits 0-3)",
    )
    p.add_argument("--interp-label", type=int, default=0, help="digit model: the class of both strips")
    p.add_argument("--guidance", type=float, help="digit model: guidance scale (default: its config's)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="face UNet: auto = fp32/TF32")
    p.add_argument("--batch-size", type=int, default=0, help="images per forward pass (0 = all)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def digit_job(args: argparse.Namespace, device: torch.device) -> FigureJob:
    from dlcv.digits.model import build_schedule, load_model, resolve_checkpoint
    from dlcv.digits.sampling import SampleSettings

    model, cfg = load_model(resolve_checkpoint(args.digit_ckpt), device)
    classes = model.null_class
    try:
        labels = [int(s) for s in args.labels.split(",")]
    except ValueError:
        raise UserError(f"--labels: expected comma-separated integers, got {args.labels!r}") from None
    if len(labels) != GRID_NOISES or not all(0 <= v < classes for v in labels):
        raise UserError(f"--labels: expected {GRID_NOISES} class labels in 0..{classes - 1}")
    if not 0 <= args.interp_label < classes:
        raise UserError(f"--interp-label: expected a class label in 0..{classes - 1}")
    settings = SampleSettings.resolve(cfg, guidance=args.guidance)
    guidance = settings.guidance
    if args.steps is None:
        args.steps = settings.steps
    total = int(cfg["diffusion"]["num_train_timesteps"])
    if args.steps > total:
        raise UserError(f"--steps: the digit model has {total} training timesteps, got {args.steps}")
    return digit_figure_job(model, build_schedule(cfg), labels, args.interp_label, guidance, args.seed)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    check_batch_size(args.batch_size, zero="all")
    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise UserError("--steps must be in 1..1000")
    if args.guidance is not None and not math.isfinite(args.guidance):
        raise UserError(f"--guidance must be a finite number, got {args.guidance}")
    if args.unet and not args.noise_dir:
        raise UserError("--unet needs --noise-dir (the folder of face noises)")
    if args.digit_ckpt and args.noise_dir:
        raise UserError("--noise-dir is for --unet; the digit model draws its noises from --seed")
    if args.unet and args.steps is None:
        args.steps = 50
    seed_everything(args.seed)
    device = pick_device(args.device)
    with torch.no_grad():  # not torch.set_grad_enabled: main() may run inside a bigger program
        written = _render(args, device)
    for path in written:
        print(f"wrote {path}")


def _render(args: argparse.Namespace, device: torch.device) -> list[Path]:
    if args.unet:
        precision = face_precision(args.precision, device)
        job = face_figure_job(args.unet, args.noise_dir, device, precision, GRID_NOISES)
        context = precision_context(precision, device)
    else:
        job = digit_job(args, device)
        context = contextlib.nullcontext()
    out_dir = prepare_out_dir(args.out_dir)  # a bad output path fails now, not after the sampling
    with context:
        return render_figures(
            job,
            out_dir,
            seed=args.seed,
            steps=args.steps,
            batch_size=args.batch_size or None,
            device=device,
            progress=not args.quiet,
        )


if __name__ == "__main__":
    run(main)
