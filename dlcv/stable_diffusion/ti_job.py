"""The Textual Inversion job of ``PB3/train.py``: every concept of a plan, one after another, on one
model load.

:class:`LearnJob` holds the settings: the concepts (:class:`~dlcv.stable_diffusion.course.ConceptPlan`),
a :class:`~dlcv.stable_diffusion.textual_inversion.TIConfig` and a :class:`~dlcv.training.TrainConfig`
shared by every concept (each gets its token, kind, init word and output folder). :func:`learn_concepts`
checks every input and output folder, then resolves the device once (a torchrun launch: this rank's
GPU), loads Stable Diffusion there and trains each concept with
:func:`~dlcv.stable_diffusion.textual_inversion.train_textual_inversion`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from dlcv.cli import ArgumentError
from dlcv.io.checkpoint import load_checkpoint
from dlcv.runtime import PRECISIONS
from dlcv.stable_diffusion.course import (
    ConceptJob,
    ConceptPlan,
    check_concept_folder,
    check_sd_checkpoint,
    load_model,
)
from dlcv.stable_diffusion.embeddings import LEARNED_EMBEDS
from dlcv.stable_diffusion.generation import DEFAULT_SOLVER, DEFAULT_STEPS, SOLVERS
from dlcv.stable_diffusion.textual_inversion import TIConfig, train_textual_inversion
from dlcv.stable_diffusion.ti_data import Augmentation, concept_images
from dlcv.training import TrainConfig, distributed
from dlcv.training.trainer import CHECKPOINT_NAME

#: What the job's arguments are called on ``PB3/train.py``'s command line, where not ``--name``.
FLAGS = {
    "sample_every": "--validate-every",
    "warmup_steps": "--warmup",
    "validate_prompts": "--validate-prompt",
}


def default_warmup(steps: int) -> int:
    """The linear warm-up when none is given: ``min(100, steps / 20)`` steps."""
    return min(100, steps // 20)


def add_learning_flags(p: argparse.ArgumentParser) -> None:
    """``PB3/train.py``'s flags for how each concept is learned (read back by :func:`learning_settings`);
    the flags that choose the concepts are the script's."""
    p.add_argument("--vectors", type=int, default=1, help="embedding vectors per token (default: 1)")
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps per concept (default: 2000)")
    p.add_argument("--lr", type=float, default=5e-3, help="AdamW learning rate (default: %(default)s)")
    p.add_argument("--scale-lr", action="store_true", help="multiply --lr by batch x grad-accum x processes")
    p.add_argument("--warmup", type=int, help="linear warm-up steps (default: min(100, steps/20))")
    p.add_argument("--batch-size", type=int, default=4, help="images per step and process (default: 4)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimiser step (default: 1)")
    p.add_argument("--resolution", type=int, default=512, help="training image side (default: %(default)s)")
    p.add_argument("--views", type=int, default=16, help="augmented views per image, VAE-encoded once (16)")
    p.add_argument(
        "--crop-min",
        type=float,
        default=0.8,
        help="smallest random square crop, as a fraction of the shorter side; 1 = no cropping "
        "(default: %(default)s)",
    )
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips (text, asymmetric concepts)")
    p.add_argument("--seed", type=int, default=0, help="seed of views, batches and noise (default: 0)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="the UNet's dtype and autocast: auto = bf16 on GPUs of compute capability >= 8.0, "
        "fp16 below, fp32 on the CPU; fp32: no mixed precision on CUDA either",
    )
    p.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute UNet activations in the backward pass (less memory, slower)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/checkpoint.pt (with --json: each unfinished concept)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in an output folder that holds another run (its checkpoint and "
        "metrics are deleted, its embedding replaced)",
    )
    p.add_argument("--ckpt-every", type=int, default=500, help="steps between checkpoints, exports (500)")
    p.add_argument(
        "--validate-every",
        type=int,
        default=500,
        help="steps between validation images; 0 = only at the end (default: %(default)s)",
    )
    p.add_argument("--validate-images", type=int, default=4, help="images per validation prompt; 0: none (4)")
    p.add_argument(
        "--validate-steps",
        type=int,
        default=DEFAULT_STEPS,
        help="sampler steps of validation images (default: %(default)s, as hw2_3.sh)",
    )
    p.add_argument(
        "--validate-solver",
        choices=SOLVERS,
        default=DEFAULT_SOLVER,
        help="sampler of validation images (default: %(default)s, as hw2_3.sh)",
    )
    p.add_argument(
        "--validate-prompt",
        action="append",
        metavar="TEXT",
        help="validation prompt with {} for the token (repeatable; default: two per kind)",
    )
    p.add_argument("--guidance", type=float, default=7.5, help="guidance scale of validation images (7.5)")
    p.add_argument("--log-every", type=int, default=50, help="steps between metrics.jsonl lines (50)")
    p.add_argument(
        "--time-budget",
        type=float,
        help="seconds per concept: plan the steps (and the cosine) to end in time, at most --steps",
    )


def learning_settings(args: argparse.Namespace) -> tuple[TIConfig, TrainConfig]:
    """What to learn of each concept and how, from :func:`add_learning_flags`' flags: a
    :class:`TIConfig` whose token and init word the plan fills in, and a :class:`TrainConfig`
    (which checks itself) whose ``out_dir`` is set per concept."""
    aug = Augmentation(args.resolution, args.views, args.crop_min, not args.no_flip)
    ti = TIConfig(
        token="",
        init_word="",
        vectors=args.vectors,
        augmentation=aug,  # token..: per concept
        validate_images=args.validate_images,
        validate_steps=args.validate_steps,
        validate_solver=args.validate_solver,
        guidance=args.guidance,
        validate_prompts=args.validate_prompt,
        gradient_checkpointing=args.gradient_checkpointing,
    )
    warmup = args.warmup if args.warmup is not None else default_warmup(args.steps)
    train = TrainConfig(
        out_dir=Path(),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=warmup,
        grad_clip=None,  # Adam normalises the step; the paper: no clip
        grad_accum=args.grad_accum,
        ema_decay=None,
        log_every=args.log_every,
        sample_every=args.validate_every,
        ckpt_every=args.ckpt_every,
        seed=args.seed,
        precision=args.precision,
        resume=args.resume,
        overwrite=args.overwrite,
        device=args.device,
        time_budget=args.time_budget,
    )
    return ti, train


@dataclass
class LearnJob:
    """The settings of ``PB3/train.py``: which concepts (``plan``), what to learn of each (``ti``:
    its token, init word and kind come from the plan) and how (``train``: its ``out_dir`` and
    ``resume`` are set per concept; ``lr`` is the rate before ``scale_lr``, which multiplies it by
    batch x grad-accum x processes, the original paper's convention)."""

    sd_ckpt: str | None
    plan: ConceptPlan
    ti: TIConfig
    train: TrainConfig
    model_config: str | None = None
    scale_lr: bool = False

    def check(self) -> None:
        """What can be checked before the model loads, beyond what ``train`` checks of itself (its
        :class:`~dlcv.training.TrainConfig` refuses bad steps, rates, intervals and time budgets when
        it is made); the rest: :meth:`TIConfig.check`."""
        ti = self.ti
        for name in ("vectors", "validate_steps"):
            if getattr(ti, name) < 1:
                raise ArgumentError(f"`{name}` must be >= 1, got {getattr(ti, name)}")
        if ti.validate_images < 0:
            raise ArgumentError(f"`validate_images` must be >= 0, got {ti.validate_images}")
        ti.augmentation.check()
        ti.sampling().check_numbers()  # the validation images' solver and guidance
        check_sd_checkpoint(self.sd_ckpt, "sd_ckpt")


def _finished(concept: ConceptJob, steps: int | None) -> bool:
    path = concept.out / CHECKPOINT_NAME
    return steps is not None and path.is_file() and int(load_checkpoint(path).get("step", 0)) >= steps


def learn_concepts(job: LearnJob) -> list[ConceptJob]:
    """Check everything, then learn every concept of ``job.plan`` not already finished (with
    ``resume``: a ``json`` concept trained to ``steps`` is skipped, one line says so); returns the
    concepts trained. Each output folder gets ``learned_embeds.safetensors``, ``checkpoint.pt``,
    ``metrics.jsonl`` and ``samples/``."""
    job.check()
    concepts = job.plan.concepts()
    resume, overwrite = job.train.resume, job.train.overwrite
    for concept in concepts:  # every refusal before the (slow) model load
        concept_images(concept.images)
        check_concept_folder(concept, resume, overwrite)
    if job.plan.json and resume:
        done = [c for c in concepts if _finished(c, job.train.steps)]
        for c in done:
            print(f"concept {c.name} ({c.token}): already trained to {job.train.steps} steps, skipped")
        concepts = [c for c in concepts if c not in done]
        if not concepts:
            return []

    info = distributed.setup(job.train.device)  # the job's device, once: this rank's GPU under torchrun
    sd = load_model(job.sd_ckpt, job.model_config, device=info.device)
    cfg = job.train
    lr = cfg.lr * (cfg.batch_size * cfg.grad_accum * info.world_size if job.scale_lr else 1)
    for concept in concepts:
        ti = replace(job.ti, token=concept.token, init_word=concept.init_word, kind=concept.kind)
        run = replace(
            cfg,
            out_dir=concept.out,
            lr=lr,
            device=str(info.device),
            resume=resume and (concept.out / CHECKPOINT_NAME).is_file(),
            overwrite=overwrite or resume,
        )  # --resume, no checkpoint: a fresh start there
        images = concept_images(concept.images)
        if info.is_main:
            print(
                f"concept {concept.name}: {concept.token} ({concept.kind}, init {concept.init_word!r}, "
                f"{ti.vectors} vector(s)) from {len(images)} images in {concept.images}, lr {lr:g}"
            )
        train_textual_inversion(sd, images, ti, run, base_model=str(job.sd_ckpt), device=info.device)
        if info.is_main:
            print(f"concept {concept.name}: {concept.token} -> {concept.out / LEARNED_EMBEDS}")
    return concepts
