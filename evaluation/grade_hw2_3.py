"""Grade Problem 3 (Textual Inversion) outputs with CLIP, as the course's grader does.

    python evaluation/grade_hw2_3.py --json_path hw2_data/textual_inversion/input.json \
        --input_dir hw2_data/textual_inversion --output_dir OUT

For each concept key and prompt index p the 25 images of OUT/{key}/{p}/ are scored
against the reference images input_dir/{key}/ (image score) and prompt_4_clip_eval[p]
(text score); the top 5 by image + 2.5 x text are averaged and compared to baseline[p].
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dlcv.cli import UserError, check_batch_size, prepare_out_dir, run
from dlcv.clip_eval.sources import CLIP_HELP, PRECISIONS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Score Problem 3 outputs with CLIP ViT-B/32 and the course's pass rule.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--json_path", required=True, help="input.json with prompt_4_clip_eval and baseline per concept key"
    )
    p.add_argument(
        "--input_dir",
        required=True,
        help="folder holding the reference images of each concept in {key}/ (hw2_data/textual_inversion)",
    )
    p.add_argument(
        "--output_dir",
        required=True,
        help="the generated images: {key}/{prompt index}/ with exactly 25 images each",
    )
    p.add_argument("--clip", default=None, help=CLIP_HELP)
    p.add_argument(
        "--save_json",
        default=None,
        metavar="PATH",
        help="also write every prompt's scores, margins and pass flag to this JSON file",
    )
    p.add_argument("--batch_size", type=int, default=32, help="images per CLIP forward pass")
    p.add_argument(
        "--workers", type=int, default=2, help="DataLoader processes decoding images (0: in the main process)"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda:N")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="model dtype; auto is fp16 on CUDA (as the course's clip.load) and fp32 on the CPU",
    )
    args = p.parse_args(argv)
    check_batch_size(args.batch_size, "--batch_size")
    if args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    # torch is imported only now (so --help answers at once), transformers once every folder
    # has been checked (so a missing image is reported before seconds of loading).
    from dlcv.clip_eval.grading import (
        format_report,
        grade_textual_inversion,
        plan_grading,
        results_to_json,
    )
    from dlcv.io.checkpoint import save_text
    from dlcv.runtime import configure_backends, pick_device
    from dlcv.stable_diffusion.course_input import read_input_json

    plan = plan_grading(read_input_json(args.json_path, for_grading=True), args.input_dir, args.output_dir)
    save_json = Path(args.save_json) if args.save_json else None
    if save_json is not None:  # a bad path fails now, not after the grading
        if save_json.is_dir():
            raise UserError(f"--save_json {save_json} is a folder; give a file name such as scores.json")
        prepare_out_dir(save_json.parent, "folder of --save_json", create=False)
    device = pick_device(args.device)
    configure_backends(device)
    from dlcv.clip_eval.loading import load_clip

    clip = load_clip(args.clip, device, args.precision)
    print(f"CLIP: {clip.source}")
    results = grade_textual_inversion(clip, plan, args.batch_size, args.workers)
    print(format_report(results))
    summary = results_to_json(results)
    if save_json is not None:
        prepare_out_dir(save_json.parent, "folder of --save_json")
        save_text(json.dumps(summary, indent=2) + "\n", save_json)
        print(f"wrote {save_json}")
    return summary


if __name__ == "__main__":
    run(main)
