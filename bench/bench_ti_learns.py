"""See Textual Inversion learn a concept on a CPU, with the project's own Problem 3 jobs.

    python bench/bench_ti_learns.py [--out ti_learns_out]        (make demo-ti)
    python bench/bench_ti_learns.py --world-only                 (the world's named-digit rate)
    python bench/bench_ti_learns.py --train-world [--export-world dlcv_bench/digit_world/shipped]

In a small text-to-image world (:mod:`dlcv_bench.digit_world`: SD's network families on 28x28
procedural digits in two styles, trained with captions that never name the held-out digit, seven,
nor a style; shipped in ``dlcv_bench/digit_world/shipped/``, ``--train-world`` trains it again),
Textual Inversion (``PB3/train.py``'s job) learns ``<new1>`` from 5 images of the held-out digit
and ``<new2>`` from 5 SVHN-like images of mixed digits; images generated with each token at its
initial embedding (before) and learned (after) are graded by classifiers trained on the world's
view of the digits. The steps are in :mod:`dlcv_bench.digit_world.check`; the measurements on the
way in ``docs/ti_world.md``.

Ends with ``TI object: before = 0.xx, after = 0.yy`` and ``TI style: before = 0.xx, after = 0.yy``;
writes OUT/ti_learns.png (rows: object before, after; style before, after) and OUT/results.json.
Every length is a number of steps and every draw is seeded, so a run repeats.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dlcv.cli import UserError, run
from dlcv_bench.digit_world import SHIPPED_WORLD, check

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--out",
        default="ti_learns_out",
        help="output folder; the world in it is reused (default: %(default)s)",
    )
    defaults = check.Settings()
    for name in ("world_steps", "ti_steps", "n_images", "sampler_steps", "seed"):
        note = "with --train-world; " if name == "world_steps" else ""
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            default=getattr(defaults, name),
            help=f"({note}default: {getattr(defaults, name)})",
        )
    p.add_argument(
        "--guidance", type=float, default=defaults.guidance, help=f"(default: {defaults.guidance})"
    )
    p.add_argument(
        "--world-only",
        action="store_true",
        help="build (or reuse) the world and print its named-digit rate, then stop",
    )
    p.add_argument(
        "--train-world",
        action="store_true",
        help="train the world from scratch (--world-steps steps) instead of using the shipped one",
    )
    p.add_argument(
        "--export-world",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --train-world: also write it in the shipped form to DIR "
        f"(the shipped one is {SHIPPED_WORLD.relative_to(REPO)})",
    )
    args = p.parse_args(argv)
    for name in ("world_steps", "ti_steps", "n_images", "sampler_steps"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    s = check.Settings(
        world_steps=args.world_steps,
        ti_steps=args.ti_steps,
        n_images=args.n_images,
        sampler_steps=args.sampler_steps,
        guidance=args.guidance,
        seed=args.seed,
    )
    if args.export_world is not None and not args.train_world:
        raise UserError("--export-world needs --train-world")
    check.check(
        Path(args.out),
        s,
        world_only=args.world_only,
        train_world=args.train_world,
        export_world=args.export_world,
    )


if __name__ == "__main__":
    run(main)
