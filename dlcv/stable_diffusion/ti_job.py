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

from dataclasses import dataclass, replace

from dlcv.cli import ArgumentError
from dlcv.io.checkpoint import load_checkpoint
from dlcv.stable_diffusion.course import (
    ConceptJob,
    ConceptPlan,
    check_concept_folder,
    check_sd_checkpoint,
    load_model,
)
from dlcv.stable_diffusion.embeddings import LEARNED_EMBEDS
from dlcv.stable_diffusion.textual_inversion import TIConfig, train_textual_inversion
from dlcv.stable_diffusion.ti_data import concept_images
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
