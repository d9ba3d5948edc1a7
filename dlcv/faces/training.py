"""Problem 2's training job (``PB2/train.py``): the face UNet architecture as an unconditional
DDPM on a folder of images.

Objective: DDPM's epsilon loss (Ho et al. 2020, Eq. 14) with the course schedule (1000 steps,
betas 1e-4..2e-2). Images are read once into memory as uint8, resized to ``image_size`` (a
multiple of 32) and randomly flipped left-right. :func:`train_faces` is the whole job; its
settings (:class:`FaceTrainJob`, and the run's :class:`~dlcv.training.TrainConfig`) are checked
before the images are read.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from dlcv.cli import ArgumentError, UserError, existing_dir
from dlcv.diffusion import NoiseSchedule, diffusion_loss
from dlcv.diffusion.driver import COURSE, constant_eps, sample_batches
from dlcv.faces.unet import DOWN_FACTOR, FaceUNet
from dlcv.io.checkpoint import save_checkpoint, save_weights
from dlcv.io.images import list_images, load_rgb, minmax_to_uint8, save_grid
from dlcv.runtime import seed_everything
from dlcv.training import TrainConfig, train

#: The inference weights' file: ``bash hw2_2.sh NOISE_DIR OUT_DIR OUT/unet.pt`` loads it.
STATE_DICT = "unet.pt"
#: The length of a run given neither steps nor a time budget.
DEFAULT_STEPS = 100_000
#: Library arguments ``PB2/train.py`` exposes under another flag (see dlcv.cli.ArgumentError).
FLAGS = {"ema_decay": "--ema", "warmup_steps": "--warmup"}


@dataclass
class FaceTrainJob:
    """The settings of ``PB2/train.py``. ``width`` is the UNet's base channels (128: the course
    UNet, 113.7M parameters); ``steps`` ``None`` is :data:`DEFAULT_STEPS`, or no cap with a
    ``time_budget``; ``ema`` 0 is no EMA; ``sample_every`` 0 samples at the end only."""

    data: str
    out: str = "checkpoints/pb2"
    image_size: int = 64
    width: int = 128
    dropout: float = 0.1
    steps: int | None = None
    batch_size: int = 32
    lr: float = 2e-4
    warmup: int = 1000
    ema: float = 0.9999
    limit: int | None = None
    log_every: int = 50
    ckpt_every: int = 1000
    sample_every: int = 0
    sample_steps: int = 50  # DDIM steps of the sample grids
    time_budget: float | None = None
    resume: bool = False
    overwrite: bool = False
    device: str = "auto"
    seed: int = 0
    precision: str = "auto"  # dlcv.runtime.resolve_precision: auto = the card's half type, fp32 = none

    def __post_init__(self) -> None:
        if self.image_size < DOWN_FACTOR or self.image_size % DOWN_FACTOR:
            raise ArgumentError(f"`image_size` must be a positive multiple of {DOWN_FACTOR}")
        if self.width < 2 or self.width % 2:
            raise ArgumentError(f"`width` must be a positive even number of channels, got {self.width}")
        if not (math.isfinite(self.dropout) and 0 <= self.dropout < 1):
            raise ArgumentError(f"`dropout` must be in [0, 1), got {self.dropout}")
        most = COURSE.max_steps("ddim", 1000)  # the course schedule's 1000 timesteps
        if not 1 <= self.sample_steps <= most:
            raise ArgumentError(f"`sample_steps` must be 1-{most}, got {self.sample_steps}")
        if self.limit is not None and self.limit < 1:
            raise ArgumentError(f"`limit` must be positive, got {self.limit}")

    def train_config(self) -> TrainConfig:
        """The run's :class:`TrainConfig` (it checks the optimiser's and the run's settings)."""
        steps = DEFAULT_STEPS if self.steps is None and self.time_budget is None else self.steps
        return TrainConfig(
            out_dir=Path(self.out),
            steps=steps,
            batch_size=self.batch_size,
            lr=self.lr,
            warmup_steps=self.warmup,
            ema_decay=self.ema or None,
            log_every=self.log_every,
            sample_every=self.sample_every,
            ckpt_every=self.ckpt_every,
            seed=self.seed,
            precision=self.precision,
            resume=self.resume,
            overwrite=self.overwrite,
            device=self.device,
            time_budget=self.time_budget,
        )


def load_image_folder(folder: str | Path, size: int, limit: int | None = None) -> torch.Tensor:
    """Every image in ``folder`` (sorted), resized to ``size`` x ``size``: uint8 (N, 3, S, S)."""
    paths = list_images(existing_dir(folder, "--data folder"))[:limit]
    if not paths:
        raise UserError(f"--data folder {folder} contains no images")
    images = torch.empty(len(paths), 3, size, size, dtype=torch.uint8)
    for i, path in enumerate(tqdm(paths, desc="loading images", leave=False)):
        images[i] = load_rgb(path, size)
    return images


def export_face_unet(model: torch.nn.Module, out_dir: Path, config: dict[str, Any]) -> None:
    """Write the inference weights: ``unet.pt`` (plain state dict) and ``unet.safetensors``."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_checkpoint(state, out_dir / STATE_DICT)
    save_weights(state, out_dir / "unet.safetensors", config)


def train_faces(job: FaceTrainJob) -> Path:
    """The whole of ``PB2/train.py``; returns ``OUT/unet.pt``.

    Writes to ``job.out``: checkpoint.pt (resumable), unet.pt (the EMA weights as a plain state
    dict, any width), unet.safetensors (the same weights), metrics.jsonl and samples/step_*.png
    (DDIM samples of fixed noises). The non-zero ranks of a ``torchrun`` launch stay quiet.
    """
    cfg = job.train_config()  # every setting checked before the images are read
    say = print if int(os.environ.get("RANK", "0")) == 0 else (lambda *a, **k: None)
    images = load_image_folder(job.data, job.image_size, job.limit)
    say(f"data: {len(images)} images of {job.image_size}x{job.image_size} from {job.data}")

    seed_everything(job.seed)  # the initial weights repeat for a seed
    model = FaceUNet(job.width, dropout=job.dropout)
    schedule = NoiseSchedule.linear()
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    say(f"model: FaceUNet width {job.width}, {millions:.2f}M parameters")

    def next_batch(generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(images), (job.batch_size,), generator=generator)
        batch = images[index]
        flip = torch.rand(job.batch_size, generator=generator) < 0.5
        return torch.where(flip[:, None, None, None], batch.flip(-1), batch)

    def loss_fn(net: torch.nn.Module, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x0 = batch.float() / 127.5 - 1.0
        if x0.device.type == "cuda":
            x0 = x0.contiguous(memory_format=torch.channels_last)
        return diffusion_loss(net, x0, schedule, generator)

    size = job.image_size
    preview = torch.randn(16, 3, size, size, generator=torch.Generator().manual_seed(job.seed))

    def on_sample(ema_model: torch.nn.Module, step: int) -> None:
        device = next(ema_model.parameters()).device
        eps = constant_eps(lambda x, t: ema_model(x, t).float())
        x = sample_batches(eps, preview, schedule, steps=job.sample_steps, device=device)
        save_grid(minmax_to_uint8(x), Path(job.out) / "samples" / f"step_{step:07d}.png", nrow=4)

    config = {"model": "FaceUNet", "base_channels": job.width, "image_size": job.image_size}
    train(
        model,
        loss_fn,
        next_batch,
        cfg,
        on_sample=on_sample,
        export=lambda m, out, step: export_face_unet(m, out, config),
        config=config,
    )
    return Path(job.out) / STATE_DICT
