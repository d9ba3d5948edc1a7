"""How fast the PB1 CPU recipe learns real digits: accuracy against training time, in one run.

    python bench/bench_pb1_real_digits.py [--data ../shared/data/digits_mini] [--config demo]
                                          [--minutes 30] [--every 3] [--per-class 50]

On real MNIST-M and SVHN in the course layout (../shared/data/digits_mini by default):

1. times the fixed reference network (dlcv_bench/pb1.py: the first demo recipe's network,
   2 threads) and the recipe's own network, so that a slow machine can be told from a bad
   recipe: the run is ``--minutes`` of training *on the slow machine* (3.1 reference
   steps/s), i.e. the same work on any machine, however long it takes here;
2. splits the data's train split into a generator half and a grader half (per digit,
   seeded) and trains (or reuses) two graders on the grader half (small CNNs; their held-out
   accuracy on the test split is printed), so no grader has seen a generator's image;
3. trains the recipe with the real ``PB1/train.py`` (2 threads) on the generator half,
   keeping a model every ``--every`` slow-machine minutes;
4. grades every kept model on the course set (``--per-class`` images per class, 20 classes,
   with the sampler of ``--config`` and ``--set``, so a finished run can be graded again after
   the preset's sampler changes) and prints the curve as a table and a PNG.

Everything goes to ``--out`` (``curve.md``, ``curve.png``, ``curve.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from dlcv_bench.pb1 import (
    DEFAULT_DATA,
    REPO,
    SLOW_MACHINE_STEPS_PER_S,
    ensure_graders,
    grade_model,
    grader_report,
    plot_curves,
    provenance,
    reference_speed,
    split_for_graders,
    train_steps_per_second,
    write_json,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="digits in the course layout")
    p.add_argument("--config", default="demo", help="PB1 preset or YAML (%(default)s)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--minutes", type=float, default=30.0, help="slow-machine minutes of training")
    p.add_argument("--every", type=float, default=3.0, help="grade every so many slow-machine minutes")
    p.add_argument("--per-class", type=int, default=50, help="generated images per class (%(default)s)")
    p.add_argument(
        "--threads",
        type=int,
        default=2,
        help="threads of the speed measurement and the training (%(default)s, as the demo)",
    )
    p.add_argument(
        "--train-threads",
        type=int,
        help="training threads if not --threads (1 is faster "
        "on a busy machine; the length, set by the measurement, stays the same)",
    )
    p.add_argument("--out", default="bench_out/pb1_real_digits")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not Path(args.data, "mnistm", "train.csv").is_file():
        sys.exit(f"error: no digits in the course layout at {args.data} (expected mnistm/train.csv)")
    if args.minutes <= 0 or not 0 < args.every <= args.minutes:
        sys.exit("error: --minutes must be positive and --every in (0, --minutes]")
    out = Path(args.out)
    import torch

    # 1. speed: the reference network and the recipe's, alone, on --threads threads (measured
    # once per --out: a resumed run keeps its length)
    measured_file = out / "speed.json"
    key = {"config": args.config, "set": list(args.set), "threads": args.threads}
    cached = json.loads(measured_file.read_text()) if measured_file.is_file() else {}
    if cached.get("key") == key:
        ref, speed = cached["reference"], cached["recipe"]
        print(f"speeds measured when this run began ({measured_file})")
    else:
        reference_speed(args.threads)  # warm-up
        ref = reference_speed(args.threads)
        speed = train_steps_per_second(args.config, list(args.set), args.threads)
        write_json(measured_file, {"key": key, "reference": ref, "recipe": speed})
    slow_steps = SLOW_MACHINE_STEPS_PER_S * speed / ref  # recipe steps per slow-machine second
    steps = int(args.minutes * 60 * slow_steps)
    every = max(1, int(args.every * 60 * slow_steps))
    print(
        f"this machine: reference network {ref:.2f} steps/s ({ref / SLOW_MACHINE_STEPS_PER_S:.2f}x "
        f"the slow machine); {args.config}: {speed:.2f} steps/s, cost {ref / speed:.2f}x the reference"
    )
    print(
        f"training {steps} steps ({args.minutes:g} slow-machine minutes, about "
        f"{steps / speed / 60:.1f} min here), a model every {every} steps",
        flush=True,
    )

    # 2. graders that never see the generator's images: the train split halved per digit
    parts = split_for_graders(Path(args.data), out / "split")
    graders = ensure_graders(parts["graders"], out / "graders")
    held_out = grader_report(graders, parts["graders"])
    rows = []
    for name in ("mnistm", "svhn"):
        low, high = held_out[name]["ci"]
        rows.append(f"{name} {held_out[name]['acc']:.3f} [{low:.3f}, {high:.3f}]")
    print("graders' held-out accuracy (test split): " + ", ".join(rows))

    # 3. one training run, keeping models
    run = out / "run"
    if not (run / "models" / f"step_{steps:07d}.safetensors").is_file():  # else finished: reuse
        cmd = [
            sys.executable,
            str(REPO / "PB1" / "train.py"),
            "--data",
            str(parts["generator"]),
            "--out",
            str(run),
            "--config",
            args.config,
            "--steps",
            str(steps),
            "--keep-models",
            "--seed",
            str(args.seed),
            "--device",
            "cpu",
            "--set",
            *args.set,
            f"train.ckpt_every={every}",
        ]
        if (run / "checkpoint.pt").is_file():
            cmd.append("--resume")  # an interrupted run continues where it stopped
        env = {**os.environ, "OMP_NUM_THREADS": str(args.train_threads or args.threads)}
        subprocess.run(cmd, check=True, env=env)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # the run's own clock (a reused run takes no time now); each resumed process restarts it
    clock = [m["elapsed_s"] for m in metrics]
    train_wall = sum(a for a, b in zip(clock, clock[1:] + [0.0], strict=True) if b < a)
    measured = sum(m["images_per_s"] for m in metrics) / len(metrics)

    # 4. grade every kept model with the recipe's sampler
    from omegaconf import OmegaConf

    from dlcv.digits.model import load_config
    from dlcv.digits.sampling import SampleSettings

    recipe = load_config(args.config, list(args.set))
    settings = SampleSettings.resolve(OmegaConf.to_container(recipe))
    sampling = settings.as_kwargs()
    print(f"grading with {settings.describe()}")
    torch.set_num_threads(args.threads)
    points = []
    for model in sorted((run / "models").glob("step_*.safetensors")):
        step = int(model.stem.split("_")[1])
        graded = grade_model(model, graders, args.per_class, seed=args.seed, **sampling)
        minutes = step / slow_steps / 60
        points.append({"step": step, "slow_minutes": round(minutes, 2), **graded})
        print(
            f"step {step}: {minutes:.1f} slow-machine min, MNIST-M {graded['mnistm']:.3f}, "
            f"SVHN {graded['svhn']:.3f}",
            flush=True,
        )

    batch = int(recipe.train.batch_size)
    lines = [
        f"PB1 recipe `{args.config}` {' '.join(args.set)} on the generator half of {args.data}: one run "
        f"of {steps} steps, graded on {10 * args.per_class} generated images per dataset and point "
        f"({settings.describe()}) by graders trained on the other half.",
        "",
        f"This machine: reference network {ref:.2f} steps/s (2 threads; the slow machine: "
        f"{SLOW_MACHINE_STEPS_PER_S}); the recipe {speed:.2f} steps/s alone, "
        f"{measured:.0f} images/s during the run ({train_wall / 60:.1f} min of training here).",
        "",
        "| step | images seen | slow-machine min | min here | MNIST-M [95% CI] | SVHN [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for p in points:
        m, v = p["mnistm_ci"], p["svhn_ci"]
        lines.append(
            f"| {p['step']} | {p['step'] * batch:,} | {p['slow_minutes']:.1f} "
            f"| {p['step'] / speed / 60:.1f} | {p['mnistm']:.3f} [{m[0]:.3f}, {m[1]:.3f}] "
            f"| {p['svhn']:.3f} [{v[0]:.3f}, {v[1]:.3f}] |"
        )
    for target, minutes in ((0.90, 15.0), (0.95, 30.0)):
        hit = next((p for p in points if min(p["mnistm"], p["svhn"]) >= target), None)
        when = f"{hit['slow_minutes']:.1f} slow-machine min" if hit else "not reached"
        verdict = "met" if hit and hit["slow_minutes"] <= minutes + 1e-6 else "NOT met"
        lines.append(f"\nboth >= {target:.2f}: {when} (target: within {minutes:g} min): {verdict}")
    (out / "curve.md").write_text("\n".join(lines) + "\n")
    write_json(
        out / "curve.json",
        {
            "config": args.config,
            "overrides": args.set,
            "graders": held_out,
            "reference_steps_per_s": ref,
            "steps_per_s": speed,
            "points": points,
            **provenance(),
        },
    )
    plot_curves(
        {args.config: [(p["slow_minutes"], p["mnistm"], p["svhn"]) for p in points]},
        out / "curve.png",
        f"PB1 `{args.config}` on real digits (digits_mini)",
    )
    print("\n".join(lines))
    print(f"\nwrote {out / 'curve.md'} and {out / 'curve.png'}")


if __name__ == "__main__":
    main()
