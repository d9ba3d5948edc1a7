"""The course's CLIP scores as a library, and a command to score one folder of images.

Library use (from the repo root)::

    from evaluation.clip_scores import load_clip, score_folder, select_top_k
    clip = load_clip("checkpoints/clip-vit-base-patch32")
    scores = score_folder(clip, "OUT/0/0", "hw2_data/textual_inversion/0", "A dog on a hill.")

Command::

    python evaluation/clip_scores.py --images OUT/0/0 --references hw2_data/textual_inversion/0 \
        --text "A dog shepherd posing proudly on a hilltop."

prints each image's image and text score and the course's top-5 averages. Unlike the
grader it accepts any number of images (at least the number kept).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from dlcv.cli import UserError, existing_dir, run
from dlcv.clip_eval.loading import CLIP_HELP, PRECISIONS, ClipModel, load_clip
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
from dlcv.imageio import list_images
from dlcv.runtime import configure_backends, pick_device

__all__ = [
    "IMAGES_PER_PROMPT",
    "TEXT_WEIGHT",
    "TOP_K",
    "FolderScores",
    "Selection",
    "image_scores",
    "load_clip",
    "passes",
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


def score_folder(
    clip: ClipModel,
    images: str | Path,
    references: str | Path,
    text: str,
    k: int = TOP_K,
    batch_size: int = 32,
) -> FolderScores:
    """Image and text scores of every image in ``images``, and the top-``k`` averages."""
    files = list_images(existing_dir(images, "image folder"))
    refs = list_images(existing_dir(references, "reference folder"))
    if len(files) < k:
        raise UserError(f"{images}: {len(files)} images, need at least {k}")
    if not refs:
        raise UserError(f"{references}: no reference images")
    ref_features = encode_image_files(clip, refs, batch_size)
    features = encode_image_files(clip, files, batch_size)
    img = image_scores(features, ref_features)
    txt = text_scores(features, clip.encode_texts([text])[0], clip.logit_scale)
    return FolderScores(files, img.tolist(), txt.tolist(), select_top_k(img, txt, TEXT_WEIGHT, k))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="CLIP image/text scores of one folder of generated images (course rule).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--images", required=True, help="folder of generated images")
    p.add_argument("--references", required=True, help="folder of the concept's reference images")
    p.add_argument("--text", required=True, help="evaluation prompt (the concept in words)")
    p.add_argument("--baseline", type=float, nargs=2, default=None, metavar=("IMAGE", "TEXT"),
                   help="optional baseline [image, text] to report pass/fail against")
    p.add_argument("--top_k", type=int, default=TOP_K, help="how many ranked images to average")
    p.add_argument("--clip", default=None, help=CLIP_HELP)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda:N")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="model dtype; auto is fp16 on CUDA and fp32 on the CPU")
    args = p.parse_args(argv)
    if args.top_k < 1:
        p.error("--top_k must be >= 1")
    return args


def main(argv: list[str] | None = None) -> FolderScores:
    args = parse_args(argv)
    device = pick_device(args.device)
    configure_backends(device)
    clip = load_clip(args.clip, device, args.precision)
    scores = score_folder(clip, args.images, args.references, args.text, args.top_k)
    chosen = set(scores.selection.indices)
    for i, (f, a, b) in enumerate(zip(scores.files, scores.image, scores.text, strict=True)):
        print(f"{'*' if i in chosen else ' '} {f.name}  image {a:6.2f}  text {b:6.2f}  "
              f"rank score {a + TEXT_WEIGHT * b:7.2f}")
    sel = scores.selection
    line = f"top {len(sel.indices)}: image {sel.image_score:.2f}  text {sel.text_score:.2f}"
    if args.baseline is not None:
        verdict = "PASS" if passes(sel.image_score, sel.text_score, args.baseline) else "FAIL"
        line += f"  baseline {args.baseline[0]:g}/{args.baseline[1]:g}  {verdict}"
    print(line)
    return scores


if __name__ == "__main__":
    run(main)
