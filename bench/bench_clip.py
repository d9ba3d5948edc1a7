"""Benchmark CLIP zero-shot throughput and the Problem 3 grader against a course-style loop.

    python bench/bench_clip.py                                   # tiny random CLIP (< 1 min on CPU)
    python bench/bench_clip.py --arch vit-b32                    # random weights, ViT-B/32 sizes
    python bench/bench_clip.py --clip checkpoints/clip-vit-base-patch32   # real weights

1. Zero-shot: synthetic ``val/{class_id}_{image_id}.png`` files (CIFAR-sized, 32x32) go
   through :func:`dlcv.clip_eval.zeroshot.run_zeroshot` (decode, preprocess, encode in
   batches, classify); prints images per second, and the time to build the class
   embeddings from one prompt and from the 18-template ensemble.
2. Grader: a synthetic Problem 3 tree (25 images per prompt, SD-sized by default) graded
   by :func:`dlcv.clip_eval.grading.grade_textual_inversion` (references encoded once per
   concept) and by a straightforward loop as the course's script does it: per batch of
   generated images, each reference image is preprocessed and encoded again, one at a
   time, and the prompt is encoded per folder (the course script also reloads the model
   per folder; that is left out here). Prints both times, the ratio, and the largest
   difference of the averaged scores (the two must agree).

Synthetic images and random weights make the timings meaningful (the work does not
depend on the pixel values or the weights), never the accuracies.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlcv.cli import UserError, run
from dlcv.clip_eval.grading import GradingPlan, grade_textual_inversion, plan_grading
from dlcv.clip_eval.loading import ClipModel, load_clip, wrap_clip_model
from dlcv.clip_eval.preprocess import clip_transform, open_pil
from dlcv.clip_eval.prompts import CIFAR_TEMPLATES, DEFAULT_TEMPLATE
from dlcv.clip_eval.scores import TEXT_WEIGHT, TOP_K, image_scores, select_top_k, text_scores
from dlcv.clip_eval.sources import CLIP_HELP, PRECISIONS
from dlcv.clip_eval.tiny import random_clip
from dlcv.clip_eval.zeroshot import read_zeroshot_folder, run_zeroshot, text_classifier
from dlcv.clip_tokenizer import offline_clip_tokenizer
from dlcv.runtime import configure_backends, pick_device
from dlcv.stable_diffusion.course_input import read_input_json
from dlcv_bench.clip import ARCHS, smooth_image, write_zeroshot_data


def write_grading_tree(
    root: Path, concepts: int, prompts: int, references: int, size: int, seed: int
) -> tuple[Path, Path, Path]:
    """input.json, ``refs/{key}/`` and ``out/{key}/{p}/`` with 25 images each."""
    rng = np.random.default_rng(seed)
    entries = {}
    for key in map(str, range(concepts)):
        entries[key] = {
            "token_name": f"<new{key}>",
            "prompt_4_clip_eval": [f"A photo of concept {key} in place {p}." for p in range(prompts)],
            "baseline": [[50.0, 20.0]] * prompts,
        }
        (root / "refs" / key).mkdir(parents=True)
        for r in range(references):
            smooth_image(rng, size).save(root / "refs" / key / f"{r}.png")
        for p in range(prompts):
            folder = root / "out" / key / str(p)
            folder.mkdir(parents=True)
            for i in range(25):
                smooth_image(rng, size).save(folder / f"{i:02d}.png")
    (root / "input.json").write_text(json.dumps(entries))
    return root / "input.json", root / "refs", root / "out"


def course_style_grade(clip: ClipModel, plan: GradingPlan, batch_size: int) -> list[tuple[float, float]]:
    """The straightforward loop: references re-encoded, one by one, for every batch."""
    transform = clip_transform(clip.image_size)
    out = []
    for concept in plan.concepts:
        ref_images = [open_pil(p) for p in plan.references[concept.key]]
        for index, files in enumerate(plan.images[concept.key]):
            generated = [open_pil(p) for p in files]
            text = clip.encode_texts([concept.eval_prompts[index]])[0]
            image, txt = [], []
            for start in range(0, len(generated), batch_size):
                batch = clip.encode_images(
                    torch.stack([transform(im) for im in generated[start : start + batch_size]])
                )
                refs = torch.cat([clip.encode_images(transform(im)[None]) for im in ref_images])
                image.append(image_scores(batch, refs))
                txt.append(text_scores(batch, text, clip.logit_scale))
            chosen = select_top_k(torch.cat(image), torch.cat(txt), TEXT_WEIGHT, TOP_K)
            out.append((chosen.image_score, chosen.text_score))
    return out


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Wall time of ``fn()`` (CUDA work included) and its result."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time CLIP zero-shot (images/s) and the Problem 3 grader against a "
        "course-style loop that re-encodes the references per batch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--clip", default=None, help="real weights to time instead of random ones. " + CLIP_HELP)
    p.add_argument(
        "--arch",
        default="tiny",
        choices=sorted(ARCHS),
        help="architecture of the random CLIP used without --clip",
    )
    p.add_argument("--classes", type=int, default=50, help="zero-shot classes (the course: 50)")
    p.add_argument("--per_class", type=int, default=10, help="zero-shot images per class (the course: 50)")
    p.add_argument("--concepts", type=int, default=2, help="grader: concepts (the course: 2)")
    p.add_argument("--prompts", type=int, default=2, help="grader: prompts per concept")
    p.add_argument("--references", type=int, default=5, help="grader: reference images per concept")
    p.add_argument(
        "--size", type=int, default=512, help="side of the generated and reference images (SD writes 512)"
    )
    p.add_argument("--batch_size", type=int, default=256, help="zero-shot images per forward pass")
    p.add_argument(
        "--grade_batch_size",
        type=int,
        default=32,
        help="grader images per forward pass, ours and the course-style loop's (the course uses 32)",
    )
    p.add_argument("--workers", type=int, default=0, help="DataLoader processes decoding images")
    p.add_argument("--repeat", type=int, default=2, help="timed runs of each; the best is reported")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch (0: torch's default); 1 is steadier on a busy machine",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda:N")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="model dtype; auto is fp16 on CUDA and fp32 on the CPU",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and images")
    args = p.parse_args(argv)
    if (
        min(
            args.classes,
            args.per_class,
            args.concepts,
            args.prompts,
            args.references,
            args.size,
            args.batch_size,
            args.grade_batch_size,
            args.repeat,
        )
        < 1
        or min(args.workers, args.threads) < 0
    ):
        p.error("counts, sizes and batch sizes must be >= 1, --workers and --threads >= 0")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    configure_backends(device)
    if args.clip is not None:
        clip = load_clip(args.clip, device, args.precision)
    else:
        model = random_clip(ARCHS[args.arch](), seed=args.seed)
        clip = wrap_clip_model(model, offline_clip_tokenizer(), device, args.precision, f"random {args.arch}")
    print(f"CLIP: {clip.source} ({clip.image_size}px input) on {device}, {clip.dtype}")
    report: dict = {"clip": clip.source, "device": str(device), "dtype": str(clip.dtype)}

    with tempfile.TemporaryDirectory(prefix="bench_clip_") as tmp:
        root = Path(tmp)
        data = read_zeroshot_folder(
            write_zeroshot_data(root / "zs", args.classes, args.per_class, 32, args.seed)
        )
        labels = list(data.id2label.values())
        run_zeroshot(clip, data, (DEFAULT_TEMPLATE,), False, args.batch_size, args.workers, False)  # warm-up
        t_one, _ = timed(lambda: text_classifier(clip, labels, (DEFAULT_TEMPLATE,)), device)
        t_ens, _ = timed(lambda: text_classifier(clip, labels, CIFAR_TEMPLATES), device)
        t_zs = min(
            timed(
                lambda: run_zeroshot(
                    clip, data, (DEFAULT_TEMPLATE,), False, args.batch_size, args.workers, progress=False
                ),
                device,
            )[0]
            for _ in range(args.repeat)
        )
        n = len(data.files)
        print(
            f"zero-shot: {n} images in {t_zs:.2f} s = {n / t_zs:.0f} images/s end to end "
            f"(decode, preprocess, encode, classify; batch {args.batch_size}, "
            f"{args.workers} workers)"
        )
        print(
            f"class embeddings for {len(labels)} classes: {1000 * t_one:.0f} ms with one "
            f"prompt, {1000 * t_ens:.0f} ms with the {len(CIFAR_TEMPLATES)}-template ensemble"
        )
        report["zeroshot"] = {
            "images": n,
            "seconds": t_zs,
            "images_per_s": n / t_zs,
            "text_single_s": t_one,
            "text_ensemble_s": t_ens,
        }

        json_path, input_dir, output_dir = write_grading_tree(
            root / "ti", args.concepts, args.prompts, args.references, args.size, args.seed
        )
        plan = plan_grading(read_input_json(json_path, for_grading=True), input_dir, output_dir)
        bs = args.grade_batch_size
        ours_t, naive_t = [], []
        for _ in range(args.repeat):  # alternate, so that both see the same machine state
            t, ours = timed(lambda: grade_textual_inversion(clip, plan, bs, args.workers, False), device)
            ours_t.append(t)
            t, naive = timed(lambda: course_style_grade(clip, plan, bs), device)
            naive_t.append(t)
        diff = max(
            max(abs(r.image_score - a), abs(r.text_score - b)) for r, (a, b) in zip(ours, naive, strict=True)
        )
        n_images = sum(len(f) for folders in plan.images.values() for f in folders)
        print(
            f"grader: {len(ours)} prompts, {n_images} images of {args.size}px, "
            f"{args.references} references per concept, batch {bs}"
        )
        print(f"  references once per concept : {min(ours_t):.2f} s")
        print(
            f"  course-style, per batch      : {min(naive_t):.2f} s "
            f"({min(naive_t) / min(ours_t):.2f}x the time)"
        )
        print(f"  largest difference of the averaged scores: {diff:.2e}")
        if diff > 0.05:
            raise UserError(f"the two graders disagree by {diff:.3f} points")
        report["grader"] = {
            "prompts": len(ours),
            "images": n_images,
            "ours_s": min(ours_t),
            "course_style_s": min(naive_t),
            "max_score_diff": diff,
        }
    return report


if __name__ == "__main__":
    run(main)
