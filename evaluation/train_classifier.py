r"""Train the digit graders: a LeNet for MNIST-M (course-compatible) and a stronger SVHN classifier.

    python evaluation/train_classifier.py --data hw2_data/digits --dataset both --out checkpoints/classifiers
    python evaluation/train_classifier.py --data demo/digits --dataset both --out demo/classifiers \
        --time-budget 45                                   # the built-in synthetic set, on a CPU

Reads ``DATA/{mnistm,svhn}/train.csv`` (course layout; also the synthetic set written by
``python -m dlcv.data.synthetic_digits``) and holds out ``test.csv`` or ``val.csv`` when
present, else a seeded 10 % of train. Writes to ``--out``:

* ``Classifier.pth``: the MNIST-M LeNet in the course's format ``{"state_dict", "optimizer"}``,
  loaded by the course's grader and by ``evaluation/digit_classifier.py --checkpoint``;
* ``mnistm_classifier.safetensors``, ``svhn_classifier.safetensors``: the weights with their
  architecture and held-out accuracy as metadata (``--svhn-checkpoint`` takes the latter);
* ``train_mnistm/``, ``train_svhn/``: the training runs (``checkpoint.pt``, ``metrics.jsonl``).

Then grade generated digits with::

    python evaluation/digit_classifier.py --folder OUT --checkpoint DIR/Classifier.pth \
        --svhn-checkpoint DIR/svhn_classifier.safetensors
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import torch

from dlcv.cli import UserError, check_batch_size, existing_dir, prepare_out_dir, run
from dlcv.data.digits import DATASETS
from dlcv.digits.classifiers import ARCHITECTURES
from dlcv.digits.grader_training import DEFAULT_ARCH, DEFAULTS, train_grader


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data",
        default="hw2_data/digits",
        help="folder with mnistm/ and svhn/ in the course layout (default: %(default)s)",
    )
    p.add_argument(
        "--dataset",
        default="both",
        choices=[*DATASETS, "both"],
        help="which grader(s) to train (default: %(default)s)",
    )
    p.add_argument("--out", required=True, help="output folder for the classifiers and the training runs")
    p.add_argument(
        "--arch",
        default="auto",
        choices=["auto", *ARCHITECTURES],
        help="architecture for every dataset trained; auto = "
        + ", ".join(f"{a} for {d}" for d, a in DEFAULT_ARCH.items())
        + " (resnet34 is the course's SVHN network: a GPU choice). Classifier.pth is "
        "written only for a MNIST-M lenet",
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument(
        "--epochs",
        type=int,
        help="passes over the training images (default per architecture: "
        + ", ".join(f"{a} {int(hp['epochs'])}" for a, hp in DEFAULTS.items())
        + ")",
    )
    length.add_argument("--steps", type=int, help="optimiser steps instead of --epochs")
    p.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="seconds of training per classifier: the run (and its cosine schedule) is "
        "shortened to end in time",
    )
    p.add_argument("--batch-size", type=int, help="images per step (default per architecture)")
    p.add_argument("--lr", type=float, help="peak AdamW learning rate (default per architecture)")
    p.add_argument("--limit", type=int, help="use at most N training images per dataset (quick runs)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--threads",
        type=int,
        help="CPU threads for torch (default: torch's choice; 1 is often faster for these small "
        "networks when other programs share the CPU)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the runs in --out/train_{dataset}/ (needed to reuse an --out that already holds one)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    for flag in ("epochs", "steps", "batch_size", "limit", "threads"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if args.batch_size is not None:
        check_batch_size(args.batch_size)
    for flag in ("time_budget", "lr"):
        value = getattr(args, flag)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"--{flag.replace('_', '-')} must be positive, got {value}")
    data = existing_dir(args.data, "--data")
    out = prepare_out_dir(args.out, "--out", create=False)  # created by the training
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    datasets = list(DATASETS) if args.dataset == "both" else [args.dataset]
    results = []
    for dataset in datasets:
        result = train_grader(
            data,
            dataset,
            out,
            arch=args.arch,
            limit=args.limit,
            device=args.device,
            seed=args.seed,
            epochs=args.epochs,
            steps=args.steps,
            time_budget=args.time_budget,
            batch_size=args.batch_size,
            lr=args.lr,
            resume=args.resume,
        )
        results.append(result)
        s = result.heldout
        print(
            f"{dataset}: {result.arch} held-out ({result.heldout_name}) acc = {s['acc']:.4f} "
            f"(correct/total = {s['correct']}/{s['total']}), trained on {result.n_train} images "
            f"in {result.seconds:.0f}s",
            flush=True,
        )
    written = [path for result in results for path in result.paths]
    print("wrote:")
    for path in written:
        print(f"  {path}")
    names = {p.name: p for p in written}
    mnistm = names.get("Classifier.pth", names.get("mnistm_classifier.safetensors"))
    svhn = names.get("svhn_classifier.safetensors")
    if mnistm is not None and svhn is not None:
        print(
            f"grade with: python evaluation/digit_classifier.py --folder OUT --checkpoint {mnistm} "
            f"--svhn-checkpoint {svhn}"
        )


if __name__ == "__main__":
    run(main)
