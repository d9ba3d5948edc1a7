"""Problem 3: Textual Inversion on Stable Diffusion v1.4 (one token per concept), fully offline.

One concept:
    python PB3/train.py --sd-ckpt sd-v1-4.ckpt --images hw2_data/textual_inversion/0 \\
        --token "<new1>" --init-word dog --object --out checkpoints/pb3/new1
Every concept of the course's input.json (images in DATA/{key}/, output OUT/{key}/):
    python PB3/train.py --sd-ckpt sd-v1-4.ckpt --json hw2_data/textual_inversion/input.json
Data-parallel (one process per GPU, same flags; --batch-size is per GPU):
    torchrun --nnodes 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:0 --local-addr 127.0.0.1 \\
        --nproc_per_node 4 PB3/train.py --sd-ckpt sd-v1-4.ckpt --json ...

Writes to each output folder: learned_embeds.safetensors ({token: (vectors, 768)}, the
diffusers format: what PB3/inference.py and hw2_3.sh look up, and what diffusers'
load_textual_inversion reads), checkpoint.pt (continue with --resume), metrics.jsonl and
samples/step_*.png (validation images, one row per prompt).

With --json, a concept is a style when one of its prompts says "... style of <token>",
else an object; an entry may say so itself ("kind": "style"), and --kind KEY=style
overrides both. Its init word is --init-word when given, else the entry's "src_image"
("dog", "David Revoy"); a several-token init word starts from the rescaled mean of its
token embeddings. Images come from DATA/{key}/ (else DATA/{src_image}/).

Precision (--precision auto): the frozen UNet in bf16 on GPUs of compute capability >= 8.0 and
in fp16 below (e.g. the RTX 2080 Ti, with a GradScaler), fp32 on the CPU; the embedding is
always fp32. When the GPU's free memory is short, gradient checkpointing (then sliced
attention) is switched on by itself, and one line says so. Validation images use hw2_3.sh's
sampler (DPM-Solver++, 20 steps), so what you watch is what is graded.

Learning rate: --lr is the AdamW rate of the embedding itself (default 5e-3 for the default
batch of 4), with a short linear warm-up and a cosine decay; --scale-lr multiplies it by
batch x grad-accum x processes, the original paper's convention (its 5e-3 base then
gives 0.02 for a batch of 4).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from dlcv.cli import (
    UserError,
    check_batch_size,
    child_path,
    existing_file,
    prepare_out_dir,
    refuse_links,
    run,
)
from dlcv.io.checkpoint import load_checkpoint
from dlcv.runtime import PRECISIONS
from dlcv.stable_diffusion.embeddings import default_embedding_dirs, token_stem
from dlcv.stable_diffusion.generation import DEFAULT_SOLVER, DEFAULT_STEPS, SOLVERS
from dlcv.stable_diffusion.ti_data import KINDS, Augmentation, concept_images, guess_kind
from dlcv.training.run_dir import refuse_run_links
from dlcv.training.trainer import CHECKPOINT_NAME

# diffusers and the networks are imported in main(), once the arguments are known to be good.

CKPT_ENV = "SD_CKPT"
DEFAULT_INIT = {"object": "object", "style": "painting"}
#: checkpoints/pb3 of this checkout: where PB3/inference.py (and hw2_3.sh) look first.
DEFAULT_EMBEDDINGS_DIR = default_embedding_dirs(__file__)[0]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sd-ckpt", "--ckpt", dest="sd_ckpt", default=os.environ.get(CKPT_ENV),
                   help=f"Stable Diffusion v1.x: CompVis .ckpt / .safetensors or a diffusers folder "
                        f"(default: ${CKPT_ENV})")  # fmt: skip
    p.add_argument("--model-config", help="architecture JSON (SDConfig.save) for a non-v1 checkpoint "
                                          "file, e.g. a tiny test model; default: SD v1.x")  # fmt: skip
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--images", help="folder of the concept's images (one concept; needs --token)")
    what.add_argument("--json", help="the course's input.json: train every concept it lists")
    p.add_argument("--data", help="with --json: folder holding one image folder per concept key "
                                  "(default: the json's folder)")  # fmt: skip
    p.add_argument("--keys", nargs="+", help="with --json: train only these concept keys")
    p.add_argument("--kind", action="append", default=[], metavar="KEY=KIND",
                   help="with --json: force a concept's kind (object or style); repeatable")  # fmt: skip
    p.add_argument("--token", help='placeholder token to learn, e.g. "<new1>" (with --images)')
    p.add_argument("--init-word", help="word(s) whose embedding starts the token (default: the json's "
                                       "src_image, else 'object' / 'painting')")  # fmt: skip
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--object", dest="style", action="store_false", default=None,
                      help="object captions ('a photo of a <token>'); the default with --images")  # fmt: skip
    kind.add_argument("--style", dest="style", action="store_true",
                      help="style captions ('a painting in the style of <token>'); with --json: for all")
    default_out = _rel(DEFAULT_EMBEDDINGS_DIR)
    p.add_argument("--out", help=f"output folder (default: {default_out}/NAME with --images, NAME = the "
                                 f"token without <>; {default_out} with --json: a subfolder per key)")
    p.add_argument("--vectors", type=int, default=1, help="embedding vectors per token (default: 1)")
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps per concept (default: 2000)")
    p.add_argument("--lr", type=float, default=5e-3, help="AdamW learning rate (default: %(default)s)")
    p.add_argument("--scale-lr", action="store_true", help="multiply --lr by batch x grad-accum x processes")
    p.add_argument("--warmup", type=int, help="linear warm-up steps (default: min(100, steps/20))")
    p.add_argument("--batch-size", type=int, default=4, help="images per step and process (default: 4)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimiser step (default: 1)")
    p.add_argument("--resolution", type=int, default=512, help="training image side (default: %(default)s)")
    p.add_argument("--views", type=int, default=16,
                   help="augmented views per image, VAE-encoded once up front (default: 16)")
    p.add_argument("--crop-min", type=float, default=0.8,
                   help="smallest random square crop, as a fraction of the shorter side; 1 = no cropping "
                        "(default: %(default)s)")  # fmt: skip
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips (text, asymmetric concepts)")
    p.add_argument("--seed", type=int, default=0, help="seed of views, batches and noise (default: 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="the UNet's dtype and autocast: auto = bf16 on GPUs of compute capability >= 8.0, "
                        "fp16 below, fp32 on the CPU")  # fmt: skip
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA too (same as --precision fp32)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute UNet activations in the backward pass (less memory, slower)")  # fmt: skip
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt (with --json: each unfinished concept)")
    p.add_argument("--overwrite", action="store_true",
                   help="start again in an output folder that holds another run (its checkpoint and "
                   "metrics are deleted, its embedding replaced)")  # fmt: skip
    p.add_argument("--ckpt-every", type=int, default=500,
                   help="steps between checkpoints and embedding exports (default: %(default)s)")  # fmt: skip
    p.add_argument("--validate-every", type=int, default=500,
                   help="steps between validation images; 0 = only at the end (default: %(default)s)")
    p.add_argument("--validate-images", type=int, default=4,
                   help="validation images per prompt; 0 = none (default: %(default)s)")  # fmt: skip
    p.add_argument("--validate-steps", type=int, default=DEFAULT_STEPS,
                   help="sampler steps of validation images (default: %(default)s, as hw2_3.sh)")
    p.add_argument("--validate-solver", choices=SOLVERS, default=DEFAULT_SOLVER,
                   help="sampler of validation images (default: %(default)s, as hw2_3.sh)")
    p.add_argument("--validate-prompt", action="append", metavar="TEXT",
                   help="validation prompt with {} for the token (repeatable; default: two per kind)")
    p.add_argument("--guidance", type=float, default=7.5, help="guidance scale of validation images (7.5)")
    p.add_argument("--log-every", type=int, default=50, help="steps between metrics.jsonl lines (50)")
    p.add_argument("--time-budget", type=float,
                   help="seconds per concept: plan the steps (and the cosine) to end in time, "
                   "at most --steps")  # fmt: skip
    return p


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass
class Job:
    """One concept to learn: where its images are, its token and kind, where it goes."""

    name: str
    images: Path
    token: str
    init_word: str
    kind: str
    out: Path
    base: Path | None = None  # the folder ``out`` was named inside of (not chosen by the user)


def _kind_overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, kind = item.partition("=")
        if not sep or kind not in KINDS:
            raise UserError(f"--kind {item!r}: expected KEY=object or KEY=style")
        out[key] = kind
    return out


def _json_jobs(args: argparse.Namespace) -> list[Job]:
    from dlcv.stable_diffusion.course_input import read_input_json

    path = existing_file(args.json, "--json input file")
    concepts = read_input_json(path)
    data = Path(args.data) if args.data else path.parent
    if not data.is_dir():
        raise UserError(f"--data folder not found: {data}")
    keys = [c.key for c in concepts]
    for key in args.keys or []:
        if key not in keys:
            raise UserError(f"--keys: {path} has no concept {key!r} (it has {', '.join(keys)})")
    forced = _kind_overrides(args.kind)
    tokens = [c.token for c in concepts]
    if len(set(tokens)) != len(tokens):
        raise UserError(f"{path}: concepts share a token_name ({', '.join(tokens)})")
    out = Path(args.out) if args.out else DEFAULT_EMBEDDINGS_DIR
    jobs = []
    for concept in concepts:
        if args.keys and concept.key not in args.keys:
            continue
        src = concept.src_image
        kind = forced.get(concept.key) or concept.kind
        if kind is None:
            kind = ("style" if args.style else "object") if args.style is not None else None
        kind = kind or guess_kind(concept.prompts, concept.token)
        if kind not in KINDS:
            raise UserError(f"{path}: concept {concept.key!r} has kind {kind!r}; expected object or style")
        folder = child_path(data, concept.key, "concept key")
        if not folder.is_dir() and src:
            with contextlib.suppress(UserError):  # else src_image ("dog") may name the image folder
                alt = child_path(data, src, "src_image")
                folder = alt if alt.is_dir() else folder
        if not folder.is_dir():
            raise UserError(f"images of concept {concept.key!r} ({concept.token}) not found: "
                            f"{data / concept.key}")
        init = args.init_word or src or DEFAULT_INIT[kind]
        target = child_path(out, concept.key, "concept key")
        jobs.append(Job(concept.key, folder, concept.token, init, kind, target, out))
    return jobs


def _jobs(args: argparse.Namespace) -> list[Job]:
    if args.json:
        if args.token:
            raise UserError("--token is for --images; with --json the tokens come from the json's token_name")
        return _json_jobs(args)
    if args.data or args.keys or args.kind:
        raise UserError("--data, --keys and --kind go with --json")
    if not args.token:
        raise UserError('--token is required with --images (e.g. --token "<new1>")')
    images = Path(args.images)
    if not images.is_dir():
        raise UserError(f"--images folder not found: {images}")
    kind = "style" if args.style else "object"
    base = None if args.out else DEFAULT_EMBEDDINGS_DIR
    out = Path(args.out) if args.out else DEFAULT_EMBEDDINGS_DIR / token_stem(args.token)
    return [Job(args.token, images, args.token, args.init_word or DEFAULT_INIT[kind], kind, out, base)]


def _check_args(args: argparse.Namespace) -> None:
    positive = {"--steps": args.steps, "--grad-accum": args.grad_accum,
                "--vectors": args.vectors, "--views": args.views, "--validate-steps": args.validate_steps,
                "--log-every": args.log_every}  # fmt: skip
    for flag, value in positive.items():
        if value < 1:
            raise UserError(f"{flag} must be >= 1, got {value}")
    check_batch_size(args.batch_size)
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UserError(f"--lr must be a positive number, got {args.lr}")
    if not math.isfinite(args.guidance):
        raise UserError(f"--guidance must be a finite number, got {args.guidance}")
    if args.init_word is not None and not args.init_word.strip():
        raise UserError("--init-word must be a word or words (e.g. dog), got an empty string")
    Augmentation(args.resolution, args.views, args.crop_min, not args.no_flip)  # checks them
    for flag, value in (("--ckpt-every", args.ckpt_every), ("--validate-every", args.validate_every),
                        ("--validate-images", args.validate_images), ("--warmup", args.warmup or 0)):
        if value < 0:
            raise UserError(f"{flag} must be >= 0, got {value}")
    if args.time_budget is not None and not (math.isfinite(args.time_budget) and args.time_budget > 0):
        raise UserError(f"--time-budget must be a positive number of seconds, got {args.time_budget}")
    if not args.sd_ckpt:
        raise UserError(f"--sd-ckpt is required (sd-v1-4.ckpt or a diffusers folder), or set ${CKPT_ENV}")
    if not Path(args.sd_ckpt).exists():
        raise UserError(f"Stable Diffusion checkpoint not found: {args.sd_ckpt}")


def _finished(job: Job, steps: int) -> bool:
    path = job.out / CHECKPOINT_NAME
    return path.is_file() and int(load_checkpoint(path).get("step", 0)) >= steps


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    _check_args(args)
    jobs = _jobs(args)
    for job in jobs:  # every refusal before the (slow) model load
        concept_images(job.images)
        if job.base is not None:  # a folder named after a key or token: never a link planted there
            refuse_links(job.base, [job.out.relative_to(job.base)], "output folder")
        refuse_run_links(job.out)
        prepare_out_dir(job.out, "output folder", create=False)
        if (job.out / CHECKPOINT_NAME).exists() and not (args.resume or args.overwrite):
            raise UserError(f"{job.out / CHECKPOINT_NAME} already exists: pass --resume to continue it, "
                            "or choose another --out")  # fmt: skip
    if args.json and args.resume:
        done = [job for job in jobs if _finished(job, args.steps)]
        for job in done:
            print(f"concept {job.name} ({job.token}): already trained to {args.steps} steps, skipped")
        jobs = [job for job in jobs if job not in done]
        if not jobs:
            return

    from dlcv.stable_diffusion.config import load_config
    from dlcv.stable_diffusion.loading import load_stable_diffusion
    from dlcv.stable_diffusion.textual_inversion import LEARNED_EMBEDS, TIConfig, train_textual_inversion
    from dlcv.training import TrainConfig, distributed

    config = load_config(existing_file(args.model_config, "--model-config")) if args.model_config else None
    info = distributed.setup(args.device)
    sd = load_stable_diffusion(args.sd_ckpt, config=config, device=info.device)
    lr = args.lr * (args.batch_size * args.grad_accum * info.world_size if args.scale_lr else 1)
    warmup = args.warmup if args.warmup is not None else min(100, args.steps // 20)
    for job in jobs:
        ti = TIConfig(
            token=job.token,
            init_word=job.init_word,
            vectors=args.vectors,
            kind=job.kind,
            augmentation=Augmentation(args.resolution, args.views, args.crop_min, not args.no_flip),
            validate_images=args.validate_images,
            validate_steps=args.validate_steps,
            validate_solver=args.validate_solver,
            guidance=args.guidance,
            validate_prompts=args.validate_prompt,
            gradient_checkpointing=args.gradient_checkpointing,
        )
        cfg = TrainConfig(
            out_dir=job.out,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=lr,
            warmup_steps=warmup,
            grad_clip=None,  # Adam normalises the step; the method does not clip
            grad_accum=args.grad_accum,
            ema_decay=None,
            log_every=args.log_every,
            sample_every=args.validate_every,
            ckpt_every=args.ckpt_every,
            seed=args.seed,
            mixed_precision=not args.no_amp,
            precision=args.precision,
            resume=args.resume and (job.out / CHECKPOINT_NAME).is_file(),
            overwrite=args.overwrite or args.resume,  # --resume, no checkpoint: a fresh start there
            device=args.device,
            time_budget=args.time_budget,
        )
        images = concept_images(job.images)
        if info.is_main:
            print(f"concept {job.name}: {job.token} ({job.kind}, init {job.init_word!r}, {args.vectors} "
                  f"vector(s)) from {len(images)} images in {job.images}, lr {lr:g}")  # fmt: skip
        train_textual_inversion(sd, images, ti, cfg, base_model=str(args.sd_ckpt))
        if info.is_main:
            print(f"concept {job.name}: {job.token} -> {job.out / LEARNED_EMBEDS}")


if __name__ == "__main__":
    run(main)
