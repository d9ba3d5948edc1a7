"""The course's CLIP scores as a library, and a command to score one folder of images.

Library use (from the repo root)::

    from evaluation.clip_scores import load_clip, score_folder, select_top_k
    clip = load_clip("checkpoints/clip-vit-base-patch32")
    scores = score_folder(clip, "OUT/0/0", "hw2_data/textual_inversion/0", "A dog on a hill.")

Command::

    python evaluation/clip_scores.py --images OUT/0/0 --references hw2_data/textual_inversion/0 \
        --text "A dog shepherd posing proudly on a hilltop."

prints each image's image and text score (the kept ones marked #1..#5 by rank) and the
course's top-5 averages, with margins and PASS/FAIL when --baseline is given. Unlike the
grader it accepts any number of images (at least the number kept).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dlcv.cli import UserError, check_batch_size, existing_dir, run
from dlcv.clip_eval.loading import ClipModel, load_clip
from dlcv.clip_eval.preprocess import encode_image_files
from dlcv.clip_eval.scores import (
    IMAGES_PER_PROMPT,
    TEXT_WEIGHT,
    TOP_K,
    Selection,
    image_scores,
    passes,
    select_top_k,
    text_scores,
)
from dlcv.clip_eval.sources import CLIP_HELP, PRECISIONS
from dlcv.io.images import list_images
from dlcv.runtime import configure_backends, pick_device

__all__ = [
    "IMAGES_PER_PROMPT",
    "TEXT_WEIGHT",
    "TOP_K",
    "FolderScores",
    "Selection",
    "folder_files",
    "image_scores",
    "load_clip",
    "passes",
    "score_files",
    "score_folder",
    "select_top_k",
    "text_scores",
]


@dataclass
class FolderScores:
    """Per-image scores of a folder and the course's top-k selection over them."""

    files: list[Path]
    image: list[float]
    text: list[float]
    selection: Selection


def folder_files(images: str | Path, references: str | Path, k: int = TOP_K) -> tuple[list[Path], list[Path]]:
    """The image files of ``images`` (at least ``k``) and of ``references`` (at least one)."""
    files = list_images(existing_dir(images, "image folder"))
    refs = list_images(existing_dir(references, "reference folder"))
    if len(files) < k:
        raise UserError(f"{images}: {len(files)} images, need at least {k} (the number kept)")
    if not refs:
        raise UserError(f"{references}: no reference images")
    return files, refs


def score_files(
    clip: ClipModel,
    files: Sequence[Path],
    refs: Sequence[Path],
    text: str,
    k: int = TOP_K,
    batch_size: int = 32,
) -> FolderScores:
    """Image and text scores of ``files``, and the course's top-``k`` selection over them.

    The references are encoded once, whatever the number of batches.
    """
    ref_features = encode_image_files(clip, list(refs), batch_size)
    features = encode_image_files(clip, list(files), batch_size)
    img = image_scores(features, ref_features)
    txt = text_scores(features, clip.encode_texts([text])[0], clip.logit_scale)
    return FolderScores(list(files), img.tolist(), txt.tolist(), select_top_k(img, txt, TEXT_WEIGHT, k))


def score_folder(
    clip: ClipModel,
    images: str | Path,
    references: str | Path,
    text: str,
    k: int = TOP_K,
    batch_size: int = 32,
) -> FolderScores:
    """Image and text scores of every image in ``images``, and the top-``k`` averages."""
    files, refs = folder_files(images, references, k)
    return score_files(clip, files, refs, text, k, batch_size)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="CLIP image/text scores of one folder of generated images (course rule).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--images", required=True, help="folder of generated images")
    p.add_argument("--references", required=True, help="folder of the concept's reference images")
    p.add_argument("--text", required=True, help="evaluation prompt (the concept in words)")
    p.add_argument(
        "--baseline",
        type=float,
        nargs=2,
        default=None,
        metavar=("IMAGE", "TEXT"),
        help="optional baseline [image, text] to report pass/fail against",
    )
    p.add_argument("--top_k", type=int, default=TOP_K, help="how many ranked images to average")
    p.add_argument("--batch_size", type=int, default=32, help="images per CLIP forward pass")
    p.add_argument("--clip", default=None, help=CLIP_HELP)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda:N")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="model dtype; auto is fp16 on CUDA and fp32 on the CPU",
    )
    args = p.parse_args(argv)
    check_batch_size(args.batch_size, "--batch_size")
    if args.top_k < 1:
        raise UserError(f"--top_k must be 1 or more, got {args.top_k}")
    return args


def main(argv: list[str] | None = None) -> FolderScores:
    args = parse_args(argv)
    if args.baseline is not None and not all(math.isfinite(v) for v in args.baseline):
        raise UserError(f"--baseline must be two finite numbers, got {args.baseline}")
    files, refs = folder_files(args.images, args.references, args.top_k)  # checked before loading
    device = pick_device(args.device)
    configure_backends(device)
    clip = load_clip(args.clip, device, args.precision)
    scores = score_files(clip, files, refs, args.text, args.top_k, args.batch_size)
    print(f"CLIP: {clip.source}")
    rank = {index: r for r, index in enumerate(scores.selection.indices, start=1)}
    for i, (f, a, b) in enumerate(zip(scores.files, scores.image, scores.text, strict=True)):
        mark = f"#{rank[i]}" if i in rank else "  "
        print(f"{mark} {f.name}  image {a:6.2f}  text {b:6.2f}  rank score {a + TEXT_WEIGHT * b:7.2f}")
    sel = scores.selection
    line = f"top {len(sel.indices)}: image {sel.image_score:.2f}  text {sel.text_score:.2f}"
    if args.baseline is not None:
        image_base, text_base = args.baseline
        verdict = "PASS" if passes(sel.image_score, sel.text_score, args.baseline) else "FAIL"
        line = (
            f"top {len(sel.indices)}: image {sel.image_score:.2f} (baseline {image_base:g}, "
            f"{sel.image_score - image_base:+.2f})  text {sel.text_score:.2f} (baseline "
            f"{text_base:g}, {sel.text_score - text_base:+.2f})  {verdict}"
        )
    print(line)
    return scores


if __name__ == "__main__":
    run(main)
