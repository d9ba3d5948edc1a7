"""Train, check and ship Problem 1's model: the demo preset as shipped, on real digits.

    python bench/ship_pb1_model.py [--data ../shared/data/digits_mini] [--seeds 0 1 2] [--export]

1. splits digits_mini's train split into a generator part and a disjoint grader part
   (``dlcv_bench.pb1.split_for_graders``: half of each digit of each dataset, seeded);
2. trains the digit graders on the grader part (small CNNs) and checks them on the test split;
3. trains ``PB1/train.py --config demo`` (no overrides: the preset as shipped) on the generator
   part, once per ``--seeds`` seed, and times the fixed reference network (dlcv_bench/pb1.py)
   to state the training's work in slow-machine minutes;
4. stores each model small (int8 matrices with per-row scales, fp16 basis:
   ``dlcv.digits.model.export_compact_model``), then generates the course's 1,000 images from
   that file with ``hw2_1.sh`` exactly as a user does (``PB1_CKPT``), and with two more
   sampling seeds, and grades them with the independent graders (95% Wilson intervals);
5. writes everything to ``docs/results/pb1_shipped.json`` (with the command, commit, machine
   and the file's SHA-256); with ``--export`` the first seed's model goes to
   ``dlcv/assets/pb1/model.safetensors``, the model ``hw2_1.sh`` uses when a checkout has none
   of its own. Render the model card and the docs with ``python scripts/render_docs.py``.

A finished step is reused when ``--out`` already holds it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dlcv_bench.pb1 import (
    DEFAULT_DATA,
    REPO,
    SLOW_MACHINE_STEPS_PER_S,
    ensure_graders,
    grader_report,
    provenance,
    reference_speed,
    split_for_graders,
    train_steps_per_second,
    write_json,
)

RESULTS = REPO / "docs" / "results" / "pb1_shipped.json"
ASSET = REPO / "dlcv" / "assets" / "pb1" / "model.safetensors"
SAMPLING_SEEDS = (0, 1, 2)  # 0 is hw2_1.sh's


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA), help="real digits in the course layout")
    p.add_argument("--out", default="bench_out/pb1_ship", help="work folder (%(default)s)")
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0, 1, 2],
        help="training seeds; the first is shipped (%(default)s)",
    )
    p.add_argument("--threads", type=int, default=2, help="training and timing threads (%(default)s)")
    p.add_argument("--results", default=str(RESULTS), help="results file (%(default)s)")
    p.add_argument("--export", action="store_true", help=f"copy the first seed's model to {ASSET}")
    return p.parse_args(argv)


def grade(images: Path, graders: Path) -> dict:
    """``evaluation/digit_classifier.py --json`` on a folder: accuracy, counts, interval per dataset."""
    from dlcv.digits.grading import GradesRecord, wilson_interval

    record = images.with_suffix(".json")
    cmd = [
        sys.executable,
        str(REPO / "evaluation" / "digit_classifier.py"),
        "--folder",
        str(images),
        "--checkpoint",
        str(graders / "mnistm_classifier.safetensors"),
        "--svhn-checkpoint",
        str(graders / "svhn_classifier.safetensors"),
        "--json",
        str(record),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    out = {}
    for name, g in GradesRecord.load(record).grades.items():  # read as the grader wrote it
        out[name] = {
            "acc": g.acc,
            "correct": g.correct,
            "total": g.total,
            "ci": [round(v, 4) for v in wilson_interval(g.correct, g.total)],
            "per_digit": [g.per_digit[d][0] for d in range(10)],
        }
    return out


def main(argv: list[str] | None = None) -> None:
    from dlcv.digits.model import export_compact_model, load_config
    from dlcv.digits.sampling import SampleSettings
    from dlcv.io.checkpoint import load_weights

    args = parse_args(argv)
    out = Path(args.out)
    if not Path(args.data, "mnistm", "train.csv").is_file():
        sys.exit(f"error: no digits in the course layout at {args.data} (expected mnistm/train.csv)")
    parts = split_for_graders(Path(args.data), out / "split")
    graders = ensure_graders(parts["graders"], out / "classifiers")
    held_out = grader_report(graders, parts["graders"])

    ref = max(reference_speed(args.threads), reference_speed(args.threads))
    speed = train_steps_per_second("demo", [], args.threads)
    steps = int(load_config("demo").train.steps)
    work_min = steps * (ref / speed) / SLOW_MACHINE_STEPS_PER_S / 60
    print(
        f"reference {ref:.2f} steps/s, the preset {speed:.2f} steps/s here: {steps} steps = "
        f"{work_min:.1f} slow-machine minutes",
        flush=True,
    )

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    runs = []
    for seed in args.seeds:
        run = out / f"seed{seed}"
        trained = run / "train" / "model.safetensors"
        if not trained.is_file():
            cmd = [
                sys.executable,
                str(REPO / "PB1" / "train.py"),
                "--data",
                str(parts["generator"]),
                "--config",
                "demo",
                "--seed",
                str(seed),
                "--out",
                str(run / "train"),
                "--device",
                "cpu",
            ]
            began = time.perf_counter()
            subprocess.run(cmd, check=True, env=env)
            print(f"seed {seed}: trained in {time.perf_counter() - began:.0f} s here", flush=True)
        compact = export_compact_model(trained, run / "model.safetensors")
        gradings = {}
        for sampling_seed in SAMPLING_SEEDS:
            images = run / f"images_seed{sampling_seed}"
            if sampling_seed == 0:  # exactly as a user: bash hw2_1.sh OUT
                cmd = ["bash", str(REPO / "hw2_1.sh"), str(images)]
            else:
                cmd = [
                    sys.executable,
                    str(REPO / "PB1" / "inference.py"),
                    "--out-dir",
                    str(images),
                    "--seed",
                    str(sampling_seed),
                ]
            began = time.perf_counter()
            subprocess.run(cmd, check=True, env={**env, "PB1_CKPT": str(compact), "PYTHON": sys.executable})
            seconds = time.perf_counter() - began
            gradings[str(sampling_seed)] = {**grade(images, graders), "generation_s": round(seconds, 1)}
            g = gradings[str(sampling_seed)]
            print(
                f"seed {seed}, sampling seed {sampling_seed}: MNIST-M {g['mnistm']['acc']:.3f}, "
                f"SVHN {g['svhn']['acc']:.3f} ({seconds:.0f} s for 1,000 images)",
                flush=True,
            )
        _, cfg = load_weights(compact)
        runs.append(
            {
                "seed": seed,
                "steps": steps,
                "file_bytes": compact.stat().st_size,
                "sampling": SampleSettings.resolve(cfg).describe(),
                "sha256": hashlib.sha256(compact.read_bytes()).hexdigest(),
                "gradings": gradings,
            }
        )

    results = {
        "what": "the demo preset as shipped (PB1/train.py --config demo), trained on the generator "
        "half of digits_mini, stored compact, sampled by hw2_1.sh, graded by graders trained "
        "on the other half",
        "split": json.loads((out / "split" / "split.json").read_text()),
        "graders": held_out,
        "reference_steps_per_s": round(ref, 2),
        "preset_steps_per_s": round(speed, 2),
        "slow_machine_steps_per_s": SLOW_MACHINE_STEPS_PER_S,
        "threads": args.threads,
        "training_work_slow_min": round(work_min, 2),
        "runs": runs,
        **provenance(),
    }
    write_json(Path(args.results), results)
    print(f"wrote {args.results}")
    if args.export:
        ASSET.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / f"seed{args.seeds[0]}" / "model.safetensors", ASSET)
        print(f"shipped {ASSET} ({ASSET.stat().st_size / 1e6:.1f} MB); now: python scripts/render_docs.py")


if __name__ == "__main__":
    main()
