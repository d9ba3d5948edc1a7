"""Train Problem 1's class-conditional DDPM on MNIST-M + SVHN (20 joint classes).

    python PB1/train.py --data hw2_data/digits --out checkpoints/pb1
    torchrun --nnodes 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:0 --local-addr 127.0.0.1 \\
        --nproc_per_node 4 PB1/train.py --data hw2_data/digits     # data-parallel, one machine
    python PB1/train.py --config demo --set train.steps=500            # quick CPU run

Writes to --out: checkpoint.pt (resumable), model.safetensors (EMA weights +
config: what hw2_1.sh loads), metrics.jsonl and samples/step_*.png (and, with
--keep-models, models/step_*.safetensors).
"""

from __future__ import annotations

import argparse

from dlcv.cli import PRECISIONS, run
from dlcv.digits.model import PRESETS
from dlcv.digits.training import DigitTrainJob, train_pb1

#: Library arguments this command line exposes under another flag (see dlcv.cli.ArgumentError).
FLAGS = {"overrides": "--set"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="hw2_data/digits", help="folder with mnistm/ and svhn/ (course layout)")
    p.add_argument("--out", default="checkpoints/pb1", help="output folder (default: %(default)s)")
    p.add_argument("--config", default="default", help=f"preset ({', '.join(PRESETS)}) or a YAML file")
    p.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. train.lr=1e-4"
    )
    p.add_argument("--steps", type=int, help="shortcut for --set train.steps=N")
    p.add_argument("--batch-size", type=int, help="per process; shortcut for train.batch_size")
    p.add_argument(
        "--time-budget",
        type=float,
        help="seconds: the budget decides the run's length, re-planned from the measured "
        "speed as it goes (the cosine follows); the preset's steps do not cap it, "
        "--steps given too does",
    )
    p.add_argument("--limit", type=int, help="use at most N training images per dataset (quick runs)")
    p.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in an --out that holds another run (its checkpoint and metrics "
        "are deleted, its other files replaced as this run writes them)",
    )
    p.add_argument(
        "--keep-models",
        action="store_true",
        help="also keep the model of every checkpoint (train.ckpt_every) as models/step_N.safetensors",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="shortcut for --set train.precision=...: auto (the default) = mixed precision on "
        "CUDA, bf16 from compute capability 8.0, fp16 with loss scaling below; fp32: no mixed "
        "precision",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    job = DigitTrainJob(
        data=args.data,
        out=args.out,
        config=args.config,
        overrides=list(args.set),
        steps=args.steps,
        batch_size=args.batch_size,
        precision=args.precision,
        time_budget=args.time_budget,
        limit=args.limit,
        resume=args.resume,
        overwrite=args.overwrite,
        keep_models=args.keep_models,
        device=args.device,
        seed=args.seed,
    )
    print(f"model written to {train_pb1(job)}")


if __name__ == "__main__":
    run(main, FLAGS)
