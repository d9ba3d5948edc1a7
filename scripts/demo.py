"""`make demo`: Problem 1 end to end on a laptop CPU, with nothing downloaded.

    python scripts/demo.py --out demo_out [--quick]

Runs the commands a user runs on the course data, on the built-in synthetic
digits instead (MNIST-M-like and SVHN-like, written in the course layout):

1. write the synthetic set            python -m dlcv.data.synthetic_digits
2. train the two digit graders        evaluation/train_classifier.py
3. train the PB1 diffusion model      PB1/train.py --config demo
4. generate the 1,000 images          hw2_1.sh (PB1_CKPT points at the model)
5. grade them                         evaluation/digit_classifier.py
6. the report figures                 PB1/report.py and PB2/experiments.py --digit-ckpt
7. the report page                    python -m dlcv.report

Each step prints its command. Every run's length is a number of steps (never
seconds), so the same seed gives the same models and accuracies on a fast or a
slow machine. A step whose result is already in --out is reused, so a second
run only redoes what is missing (delete a sub-folder to redo that step);
nothing outside --out is written.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRADER_EPOCHS = 6


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo_out", help="folder for everything the demo writes (%(default)s)")
    p.add_argument("--pb1-steps", type=int, help="PB1 training steps (default: the demo preset's)")
    p.add_argument(
        "--train-images", type=int, default=3000, help="synthetic images per dataset (%(default)s)"
    )
    p.add_argument(
        "--data",
        help="digits in the course layout to use instead of the synthetic set "
        "(e.g. hw2_data/digits); read only",
    )
    p.add_argument("--quick", action="store_true", help="a smoke run in about a minute (the output is noise)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available) or cpu")
    p.add_argument(
        "--record",
        metavar="JSON",
        help="also write the run's accuracies (with counts and 95%% intervals), its minutes "
        "and this machine's speed on the reference network to JSON, e.g. "
        "docs/results/pb1_demo.json (the README's figures are rendered from it)",
    )
    return p.parse_args(argv)


def record_run(path: Path, grades: Path, minutes: dict[str, float]) -> None:
    """``--record``: the graded accuracies, the steps' minutes and the machine's speed."""
    import json

    from dlcv.digits.grading import wilson_interval
    from dlcv_bench.pb1 import SLOW_MACHINE_STEPS_PER_S, provenance, reference_speed, write_json

    data = json.loads(grades.read_text())
    accuracy = {}
    for name in ("mnistm", "svhn"):
        correct, total = data[name]["correct"], data[name]["total"]
        ci = [round(v, 4) for v in wilson_interval(correct, total)]
        accuracy[name] = {"acc": data[name]["acc"], "correct": correct, "total": total, "ci": ci}
    ref = max(reference_speed(2), reference_speed(2))
    write_json(
        path,
        {
            "accuracy": accuracy,
            "minutes": minutes,
            "reference_steps_per_s": round(ref, 2),
            "slow_machine_steps_per_s": SLOW_MACHINE_STEPS_PER_S,
            **provenance(),
        },
    )
    print(f"   recorded in {path} (reference network {ref:.2f} steps/s here)")


#: Minutes each step took (for --record).
MINUTES: dict[str, float] = {}


def step(title: str, cmd: list[str], env: dict[str, str] | None = None) -> str:
    """Run one user command, echoing it; stop the demo with its exit code if it fails."""
    shown = " ".join(shlex.quote(str(c)) for c in cmd)
    print(f"\n== {title}\n$ {shown}", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
    )
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    if proc.wait() != 0:
        sys.exit(f"demo: step failed ({title}), exit code {proc.returncode}")
    print(f"-- {title}: {time.perf_counter() - start:.0f}s", flush=True)
    MINUTES[title.split(" ", 1)[0].rstrip(".")] = round((time.perf_counter() - start) / 60, 2)
    return "".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    py = sys.executable
    data = Path(args.data).resolve() if args.data else out / "hw2_data" / "digits"
    classifiers = out / "classifiers"
    pb1 = out / "pb1"
    images = out / "pb1_outputs"
    figures = out / "figures"
    began = time.perf_counter()

    n_train, n_test = (300, 100) if args.quick else (args.train_images, 1000)
    if args.data:
        print(f"\n== 1. using the digits in {data}")
    elif not (data / "svhn" / "train.csv").is_file():
        step(
            "1. synthetic digits in the course layout",
            [py, "-m", "dlcv.data.synthetic_digits", "--out", data, "--train", n_train, "--test", n_test],
        )
    else:
        print(f"\n== 1. reusing the synthetic digits in {data}")

    mnistm_ckpt, svhn_ckpt = classifiers / "Classifier.pth", classifiers / "svhn_classifier.safetensors"
    if not (mnistm_ckpt.is_file() and svhn_ckpt.is_file()):
        cmd = [
            py,
            "evaluation/train_classifier.py",
            "--data",
            data,
            "--dataset",
            "both",
            "--out",
            classifiers,
            "--device",
            args.device,
        ]
        # the synthetic digits are easy: a few epochs give graders of about 0.99 held-out accuracy
        cmd += ["--steps", "20"] if args.quick else ["--epochs", str(GRADER_EPOCHS)]
        step("2. digit graders (LeNet for MNIST-M, a CNN for SVHN)", cmd)
    else:
        print(f"\n== 2. reusing the digit graders in {classifiers}")

    model = pb1 / "model.safetensors"
    if not model.is_file():
        cmd = [py, "PB1/train.py", "--data", data, "--out", pb1, "--device", args.device]
        if args.quick:
            cmd += ["--config", "tiny", "--steps", "20"]
        else:
            cmd += ["--config", "demo"] + (["--steps", args.pb1_steps] if args.pb1_steps else [])
        step("3. PB1: class-conditional DDPM with classifier-free guidance", cmd)
    else:
        print(f"\n== 3. reusing the PB1 model {model}")

    step(
        "4. PB1: 50 images per digit per dataset",
        ["bash", "hw2_1.sh", images],
        env={"PB1_CKPT": str(model), "PYTHON": py},
    )
    report = step(
        "5. grading the 1,000 images",
        [
            py,
            "evaluation/digit_classifier.py",
            "--folder",
            images,
            "--checkpoint",
            mnistm_ckpt,
            "--svhn-checkpoint",
            svhn_ckpt,
            "--device",
            args.device,
            "--json",
            images / "grades.json",
        ],
    )
    step(
        "6a. PB1 report figures",
        [py, "PB1/report.py", "--out-dir", figures / "pb1", "--ckpt", model, "--device", args.device],
    )
    step(
        "6b. PB2 figures on the digit model: eta grid, slerp and lerp strips",
        [
            py,
            "PB2/experiments.py",
            "--digit-ckpt",
            model,
            "--out-dir",
            figures / "pb2",
            "--device",
            args.device,
            "--quiet",
        ],
    )

    accuracies = dict(re.findall(r"^(MNIST-M|SVHN) acc = ([0-9.]+)", report, flags=re.M))
    print(f"\n== demo finished in {(time.perf_counter() - began) / 60:.1f} min; everything is in {out}")
    print(f"   synthetic data      {data}")
    print(f"   digit graders       {classifiers}")
    print(f"   PB1 model           {model}  (training log: {pb1 / 'metrics.jsonl'})")
    print(f"   1,000 images        {images}/mnistm, {images}/svhn")
    print(f"   figures             {figures}/pb1, {figures}/pb2")
    for line in report.splitlines():
        if " acc = " in line:
            print(f"   {line.strip()}")
    if not args.quick and accuracies and min(float(a) for a in accuracies.values()) < 0.90:
        print("   (below the 0.90 target: more --pb1-steps help)")
    step(
        "7. the report: every figure and number on one page",
        [py, "-m", "dlcv.report", "--run", out, "--out", out / "report"],
    )
    print(f"\n   report              {out / 'report' / 'index.html'}  (and report.md next to it)")
    if args.record:
        MINUTES["total"] = round((time.perf_counter() - began) / 60, 2)
        record_run(Path(args.record), images / "grades.json", MINUTES)


if __name__ == "__main__":
    main()
