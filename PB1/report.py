"""Problem 1's report figures from a trained model.

    python PB1/report.py --out-dir figures/pb1 [--ckpt checkpoints/pb1/model.safetensors]

For each dataset writes {dataset}_grid.png (10x10: rows digits 0-9, columns
different noises) and {dataset}_reverse_process.png (the first "0" at 6
timesteps, from pure noise to the result).
"""

from __future__ import annotations

import argparse

from dlcv.cli import UserError, prepare_out_dir, run
from dlcv.digits.figures import write_report_figures
from dlcv.digits.model import CKPT_ENV, DEFAULT_CKPT, build_schedule, load_model, resolve_checkpoint
from dlcv.digits.sampling import SAMPLERS, SampleSettings, check_sampling_options
from dlcv.runtime import configure_backends, pick_device


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", required=True, help="folder for the PNG figures")
    p.add_argument("--ckpt",
                   help=f"model file (default: ${CKPT_ENV}, else {DEFAULT_CKPT}, else the shipped model)")
    p.add_argument("--sampler", choices=SAMPLERS, help="default: the model's, as hw2_1.sh")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    p.add_argument("--eta", type=float, help="fresh noise of DDIM / DPM-Solver++ (default: the model's)")
    p.add_argument("--scale", type=int, default=4, help="upscale factor of the 28x28 images (%(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    check_sampling_options(args.steps, args.guidance, args.eta)
    if args.scale < 1:
        raise UserError(f"--scale must be at least 1, got {args.scale}")
    device = pick_device(args.device)
    configure_backends(device)
    model, cfg = load_model(resolve_checkpoint(args.ckpt), device)
    settings = SampleSettings.resolve(cfg, sampler=args.sampler, steps=args.steps, guidance=args.guidance,
                                      eta=args.eta)  # the settings hw2_1.sh uses for this model  # fmt: skip
    prepare_out_dir(args.out_dir, "--out-dir")
    paths = write_report_figures(model, build_schedule(cfg), args.out_dir, settings, seed=args.seed,
                                 scale=args.scale)  # fmt: skip
    for path in paths:
        print(path)


if __name__ == "__main__":
    run(main)
