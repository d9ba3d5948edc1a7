"""CLIP zero-shot classification of hw2_data/clip_zeroshot (Problem 3b).

    python PB3/zeroshot.py --data hw2_data/clip_zeroshot --clip checkpoints/clip-vit-base-patch32
    python PB3/zeroshot.py --data hw2_data/clip_zeroshot --ensemble --clean-labels

Prints the accuracy and five right and five wrong cases; writes predictions.csv,
summary.json and cases.png to --output_dir.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dlcv.cli import check_batch_size, run
from dlcv.clip_eval.prompts import CIFAR_TEMPLATES, DEFAULT_TEMPLATE
from dlcv.clip_eval.sources import CLIP_HELP, PRECISIONS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="CLIP zero-shot classification: predict each image of DATA/val/ as the label "
        "of id2label.json whose prompt is most similar to it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--data", required=True, help="folder with val/{class_id}_{image_id}.png and id2label.json"
    )
    p.add_argument("--clip", default=None, help=CLIP_HELP)
    p.add_argument(
        "--output_dir",
        default="outputs/clip_zeroshot",
        help="where predictions.csv, summary.json and cases.png are written",
    )
    p.add_argument(
        "--template",
        action="append",
        default=None,
        metavar="TEXT",
        help=f"prompt template with a {{label}} placeholder (repeat to average "
        f"several); default {DEFAULT_TEMPLATE!r}",
    )
    p.add_argument(
        "--ensemble",
        action="store_true",
        help=f"average the CLIP paper's {len(CIFAR_TEMPLATES)} CIFAR templates "
        "(with any --template) instead of the single default prompt",
    )
    p.add_argument(
        "--clean-labels",
        action="store_true",
        help="read underscores in labels as spaces (palm_tree -> palm tree); "
        "by default labels are used exactly as in id2label.json",
    )
    p.add_argument("--batch_size", type=int, default=256, help="images per CLIP forward pass")
    p.add_argument(
        "--workers", type=int, default=4, help="DataLoader processes decoding images (0: in the main process)"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda:N")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="model dtype; auto is fp16 on CUDA and fp32 on the CPU",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for drawing the cases shown")
    args = p.parse_args(argv)
    check_batch_size(args.batch_size, "--batch_size")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    # torch, torchvision and transformers are imported only now, so --help answers at once.
    from dlcv.clip_eval.zeroshot import OUTPUT_FILES, ZeroShotJob, zeroshot_job

    job = ZeroShotJob(
        args.data,
        args.output_dir,
        clip=args.clip,
        templates=args.template or [],
        ensemble=args.ensemble,
        clean_labels=args.clean_labels,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        precision=args.precision,
        seed=args.seed,
    )
    summary = zeroshot_job(job)
    csv, figure, summary_json = (Path(args.output_dir) / name for name in OUTPUT_FILES)
    print(f"wrote {csv}, {figure} and {summary_json}")
    return summary


if __name__ == "__main__":
    run(main)
