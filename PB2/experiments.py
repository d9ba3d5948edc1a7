"""Problem 2's report figures: the DDIM eta study and slerp / lerp interpolation of noises.

Face UNet (the course's UNet.pt and its noises):
    python PB2/experiments.py --unet hw2_data/face/UNet.pt --noise-dir hw2_data/face/noise --out-dir figs
Problem 1's digit model instead (no UNet.pt needed; noises drawn from --seed at the
model's image size, class-conditioned with classifier-free guidance as hw2_1.sh applies it):
    python PB2/experiments.py --digit-ckpt checkpoints/pb1/model.safetensors --out-dir figs
    python PB2/experiments.py --digit-ckpt checkpoints/pb1 --out figs --steps 10   # quick CPU demo

Writes to --out-dir:
  eta_grid.png             rows eta = 0, 0.25, 0.5, 0.75, 1; columns the first four noises
  interpolation_slerp.png  DDIM (eta 0) of slerp(noise 0, noise 1, alpha), alpha = 0, 0.1, ..., 1
  interpolation_lerp.png   the same with linear interpolation
"""

from __future__ import annotations

import argparse

from dlcv.cli import UserError, check_batch_size, run
from dlcv.digits.figures import digit_experiments, parse_labels
from dlcv.digits.sampling import SampleRequest
from dlcv.faces.ddim import NUM_STEPS, PRECISIONS
from dlcv.faces.figures import face_experiments


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
        help=f"DDIM steps (default: the course's {NUM_STEPS} for the face UNet, the model's, as hw2_1.sh, "
        "for a digit model; fewer is faster, e.g. 10 on a CPU)",
    )
    p.add_argument(
        "--labels",
        default="0,1,2,3",
        help="digit model: the four joint class labels (dataset * 10 + digit) of the eta grid's "
        "columns (default 0,1,2,3: MNIST-M digits 0-3)",
    )
    p.add_argument("--interp-label", type=int, default=0, help="digit model: the class of both strips")
    p.add_argument("--guidance", type=float, help="digit model: guidance scale (default: the model's)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="face UNet: auto = fp32/TF32")
    p.add_argument("--batch-size", type=int, default=0, help="images per forward pass (0 = all)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    check_batch_size(args.batch_size, zero="all")
    common = {
        "seed": args.seed,
        "batch_size": args.batch_size or None,
        "device": args.device,
        "progress": not args.quiet,
    }
    if args.unet:
        if not args.noise_dir:
            raise UserError("--unet needs --noise-dir (the folder of face noises)")
        steps = NUM_STEPS if args.steps is None else args.steps
        written = face_experiments(
            args.out_dir, args.unet, args.noise_dir, steps=steps, precision=args.precision, **common
        )
    else:
        if args.noise_dir:
            raise UserError("--noise-dir is for --unet; the digit model draws its noises from --seed")
        request = SampleRequest(steps=args.steps, guidance=args.guidance)  # the rest: the model's
        written = digit_experiments(
            args.out_dir,
            args.digit_ckpt,
            labels=parse_labels(args.labels),
            interp_label=args.interp_label,
            request=request,
            **common,
        )
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    run(main)
