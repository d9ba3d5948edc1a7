"""Problem 1's training job (``PB1/train.py``): the class-conditional diffusion model on MNIST-M +
SVHN (20 joint classes), with label dropout for classifier-free guidance.

:func:`train_pb1` is the whole job: the config (a preset or YAML file, with overrides) and the
run's :class:`~dlcv.training.TrainConfig` are built and checked first (:func:`pb1_config`,
:func:`pb1_train_config`), then the data is read, the network built, and the shared trainer
:func:`dlcv.training.train` runs :func:`digit_loss` on :func:`digit_batches`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from dlcv.data.digits import load_joint_digits
from dlcv.diffusion import NoiseSchedule, Objective, diffusion_loss
from dlcv.digits.model import (
    MODEL_FILE,
    DigitNet,
    build_model,
    build_objective,
    build_schedule,
    export_model,
    load_config,
    noise_predictor,
    train_settings,
)
from dlcv.digits.sampling import SampleRequest, sample_labels
from dlcv.io.checkpoint import atomic_write
from dlcv.io.images import save_grid
from dlcv.runtime import seed_everything
from dlcv.training import TrainConfig, train


@dataclass
class DigitTrainJob:
    """The settings of ``PB1/train.py``. ``steps``, ``batch_size`` and ``precision`` are shortcuts
    for the overrides ``train.steps=``, ``train.batch_size=`` and ``train.precision=``;
    ``time_budget`` alone lets the budget decide the run's length (the preset's steps do not cap
    it; ``steps`` given too does)."""

    data: str = "hw2_data/digits"
    out: str = "checkpoints/pb1"
    config: str = "default"  # a preset (dlcv.digits.model.PRESETS) or a YAML file
    overrides: list[str] = field(default_factory=list)  # KEY=VALUE, e.g. train.lr=1e-4
    steps: int | None = None
    batch_size: int | None = None
    precision: str | None = None  # None: the config's train.precision (default auto)
    time_budget: float | None = None
    limit: int | None = None  # at most this many training images per dataset
    resume: bool = False
    overwrite: bool = False
    keep_models: bool = False  # also models/step_N.safetensors at every checkpoint
    device: str = "auto"
    seed: int = 0


def pb1_config(job: DigitTrainJob) -> DictConfig:
    """The job's model config: its preset or file with the overrides (the shortcuts last)."""
    overrides = list(job.overrides)
    for key in ("steps", "batch_size", "precision"):
        if getattr(job, key) is not None:
            overrides.append(f"train.{key}={getattr(job, key)}")
    return load_config(job.config, overrides)


def pb1_train_config(job: DigitTrainJob, cfg: DictConfig) -> TrainConfig:
    """The run's :class:`TrainConfig`: the config's ``train`` section names its fields, the job
    adds the rest. A bad value of the config is named as the config's key (``train.grad_accum``)."""
    budget_only = job.time_budget is not None and job.steps is None  # the budget alone decides the length
    return train_settings(
        cfg.train,
        f"config {job.config}",
        **({"steps": None} if budget_only else {}),
        out_dir=Path(job.out),
        seed=job.seed,
        resume=job.resume,
        overwrite=job.overwrite,
        device=job.device,
        time_budget=job.time_budget,
        channels_last=True,  # faster convolutions on CPUs too (about 8% for training)
    )


def digit_batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, balanced: bool = False
) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    """``next_batch(generator)``: ``batch_size`` uint8 images and their joint labels, drawn with
    replacement; ``balanced``: every class equally often (SVHN's digits are unbalanced 3:1)."""
    weights = (1.0 / torch.bincount(labels).float())[labels] if balanced else None

    def next_batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if weights is None:
            index = torch.randint(len(images), (batch_size,), generator=generator)
        else:
            index = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
        return images[index], labels[index]

    return next_batch


def digit_loss(
    model: DigitNet, schedule: NoiseSchedule, objective: Objective, p_uncond: float
) -> Callable[[torch.nn.Module, tuple[torch.Tensor, torch.Tensor], torch.Generator], torch.Tensor]:
    """``loss_fn(net, batch, generator)`` of Problem 1: the batch's images in the diffusion's space
    (the images themselves, or their latents: ``model.encode``), each label replaced by the null
    class with probability ``p_uncond`` (label dropout: the same network learns the unconditional
    model that classifier-free guidance needs), and the diffusion objective."""
    null_class = model.null_class

    def loss_fn(net: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator):
        x_u8, y = batch
        x0 = model.encode((x_u8.float() / 127.5 - 1.0).contiguous(memory_format=torch.channels_last))
        drop = (torch.rand(y.shape, generator=generator) < p_uncond).to(y.device)
        y = torch.where(drop, torch.full_like(y, null_class), y)
        return diffusion_loss(lambda x, t: net(x, t, y), x0, schedule, generator, objective)

    return loss_fn


def train_pb1(job: DigitTrainJob) -> Path:
    """The whole of ``PB1/train.py``; returns the model file (``OUT/model.safetensors``).

    Writes to ``job.out``: checkpoint.pt (resumable), model.safetensors (EMA weights + config:
    what hw2_1.sh loads), metrics.jsonl, samples/step_*.png and, with ``keep_models``,
    models/step_*.safetensors. Every setting is checked before the data is read.
    """
    cfg = pb1_config(job)
    train_cfg = pb1_train_config(job, cfg)
    tc, out = cfg.train, Path(job.out)
    images, labels = load_joint_digits(
        job.data, "train", size=cfg.model.get("image_size", 28), limit_per_dataset=job.limit
    )
    print(f"data: {len(images)} images from {job.data}")

    seed_everything(job.seed)  # the network's initial weights: the same seed, the same model
    model = build_model(cfg)
    if hasattr(model, "fit_basis"):  # a latent model: its (linear) encoder comes from the data
        kept = model.fit_basis(images, seed=job.seed)
        print(f"PCA: {model.config.components} components keep {kept:.1%} of the pixel variance")
    schedule = build_schedule(cfg)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    preview_labels = torch.arange(20).repeat_interleave(4)  # 4 of each class, rows of 8
    settings = SampleRequest().settings(OmegaConf.to_container(cfg))  # as hw2_1.sh samples the model,
    preview = replace(
        settings,
        sampler="ddim" if settings.sampler == "ddpm" else settings.sampler,
        steps=min(settings.steps, 50),
    )  # in at most 50 steps

    def on_sample(ema_model: torch.nn.Module, step: int) -> None:
        grid = sample_labels(
            noise_predictor(ema_model, cfg),
            schedule,
            preview_labels,
            **preview.as_kwargs(),
            seed=job.seed,
            progress=False,
        )
        save_grid(grid, out / "samples" / f"step_{step:07d}.png", nrow=8)

    def export(ema_model: torch.nn.Module, out_dir: Path, step: int) -> None:
        path = export_model(ema_model, out_dir, cfg)
        if job.keep_models:  # one model per checkpoint, e.g. to grade a run's progress
            copy = out_dir / "models" / f"step_{step:07d}.safetensors"  # atomically: a link there is replaced
            atomic_write(copy, lambda tmp: shutil.copyfile(path, tmp))

    loss_fn = digit_loss(model, schedule, build_objective(cfg), tc.p_uncond)
    next_batch = digit_batches(images, labels, tc.batch_size, tc.get("balanced", False))
    train(
        model,
        loss_fn,
        next_batch,
        train_cfg,
        on_sample=on_sample,
        export=export,
        config=OmegaConf.to_container(cfg),
    )
    return out / MODEL_FILE
