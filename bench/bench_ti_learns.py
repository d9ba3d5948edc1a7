"""See Textual Inversion learn a concept on a CPU, with the project's own Problem 3 jobs.

    python bench/bench_ti_learns.py [--out ti_learns_out]        (make demo-ti)
    python bench/bench_ti_learns.py --world-only                 (the world's named-digit rate)
    python bench/bench_ti_learns.py --train-world [--export-world dlcv_bench/digit_world/shipped]
    python bench/bench_ti_learns.py --out OUT --image-sets 0 1 2 --results docs/results/ti_demo.json

In a small text-to-image world (:mod:`dlcv_bench.digit_world`: SD's network families on 28x28
procedural digits in two styles, trained with captions that never name the held-out digit, seven,
nor a style; shipped in ``dlcv_bench/digit_world/shipped/``, ``--train-world`` trains it again),
Textual Inversion (``PB3/train.py``'s job) learns ``<new1>`` from 5 images of the held-out digit
and ``<new2>`` from 5 SVHN-like images of mixed digits; images generated with each token at its
initial embedding (before) and learned (after), and three controls (the world's best words for the
concept, random vectors in the token's place, the init word once in its place) are graded by
classifiers trained on the world's view of the digits. The steps are in
:mod:`dlcv_bench.digit_world.check`; the measurements on the way in ``docs/ti_world.md``.

Ends with ``TI object: before = 0.xx, after = 0.yy``, ``TI style: before = 0.xx, after = 0.yy`` and
``TI controls: object: words = 0.xx, random = 0.xx, init word = 0.xx; style: ...``; writes
OUT/ti_learns.png (rows: object before, after; style before, after) and OUT/results.json.
``--image-sets 0 1 2`` runs the check once per image set (the 5 + 5 concept images, drawn by a rule
fixed in advance; OUT/image_set_K each, the world and graders shared), and ``--results JSON`` files
every set's rates with the command, commit, machine and its speed on the reference network of
``bench/reference_speed.py`` (docs/results/ti_demo.json: docs/ti_world.md's control table and the
README's figures are rendered from it). Every length is a number of steps and every draw is
seeded, so a run repeats.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import asdict
from pathlib import Path

import torch

from dlcv.cli import UserError, run
from dlcv_bench.digit_world import SHIPPED_WORLD, check
from dlcv_bench.pb1 import SLOW_MACHINE_STEPS_PER_S, provenance, reference_speed, write_json

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
    p.add_argument(
        "--image-sets",
        type=int,
        nargs="+",
        default=[0],
        metavar="K",
        help="the concept-image sets to run, each a full check (default: 0; e.g. 0 1 2)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        metavar="JSON",
        help="also write every set's rates, the run's provenance and this machine's reference speed "
        "to JSON (e.g. docs/results/ti_demo.json)",
    )
    args = p.parse_args(argv)
    if len(set(args.image_sets)) != len(args.image_sets) or min(args.image_sets) < 0:
        raise UserError(f"--image-sets must be distinct numbers >= 0, got {args.image_sets}")
    if (args.world_only or args.train_world) and (args.results is not None or len(args.image_sets) > 1):
        raise UserError(
            "--results and several --image-sets run on a world already in --out: train it first "
            "(--train-world), then run them with the same --out"
        )
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
    if args.world_only or args.train_world:
        check.check(
            Path(args.out),
            dataclasses.replace(s, image_set=args.image_sets[0]),
            world_only=args.world_only,
            train_world=args.train_world,
            export_world=args.export_world,
        )
        return
    threads, speed = torch.get_num_threads(), 0.0
    if args.results is not None:
        speed = max(reference_speed(2), reference_speed(2))  # on 2 threads, as every recorded speed
        torch.set_num_threads(threads)  # which reference_speed changed
    results = check.check_image_sets(Path(args.out), s, args.image_sets)
    if args.results is not None:
        record(args.results, s, results, speed)


def record(path: Path, s: check.Settings, results: dict[int, dict], speed: float) -> None:
    """``--results``: each image set's rates (:data:`check.ROWS`) and images, the world, the settings,
    the run's provenance and this machine's speed on the reference network (measured before the run)."""
    first = next(iter(results.values()))
    keep = ("rates", "seconds", "concept_images", "denoising_gain", "random_norm")
    write_json(
        path,
        provenance()
        | {
            "threads": torch.get_num_threads(),
            "reference_steps_per_s": round(speed, 2),
            "slow_machine_steps_per_s": SLOW_MACHINE_STEPS_PER_S,
            "world": first["world"],
            "named_digit_rate": round(first["world_named_digit_rate"]["rate"], 3),
            "graders_heldout_acc": first["graders_heldout_acc"],
            "settings": asdict(s),
            "rows": first["rows"],
            "image_sets": {str(k): {key: r[key] for key in keep} for k, r in results.items()},
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    run(main)
