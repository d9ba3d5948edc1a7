"""Randomly initialised Stable Diffusion v1-family models, for tests and benchmarks.

:func:`build_tiny_sd` builds the three networks from an :class:`SDConfig` (by default
:func:`~dlcv.stable_diffusion.config.tiny_config`: SD v1's block layout with tiny widths
and CLIP's real vocabulary) with seeded random weights. The save helpers write such a
model the two ways a user's Stable Diffusion arrives: a CompVis-layout ``.ckpt`` /
``.safetensors`` file and a diffusers folder. They carry no knowledge: use them to check
plumbing and speed, never image quality.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from dlcv.clip_tokenizer import offline_clip_tokenizer
from dlcv.stable_diffusion.config import SDConfig, tiny_config
from dlcv.stable_diffusion.export import save_ldm_checkpoint
from dlcv.stable_diffusion.loading import StableDiffusion, quiet_diffusers


class LightningExtra:
    """Stands in for the training-framework objects Lightning pickles next to the weights.

    ``torch.load(weights_only=True)`` refuses a file that names this class, just as it
    refuses CompVis' ``sd-v1-4.ckpt`` (which pickles ``pytorch_lightning`` callbacks);
    loading it through our stub unpickler must never import or call it.
    """

    def __init__(self, note: str = "") -> None:
        self.note = note
        self.best_model_score = np.float64(0.25)  # Lightning's callbacks pickle NumPy scalars too


def build_tiny_sd(seed: int = 0, config: SDConfig | None = None) -> StableDiffusion:
    """A random SD v1-family model (default :func:`tiny_config`), fp32 on the CPU, eval mode.

    The same ``seed`` and ``config`` always give the same weights. Gradients are off,
    as after :func:`~dlcv.stable_diffusion.loading.load_stable_diffusion`.
    """
    config = config or tiny_config()
    torch.manual_seed(seed)  # diffusers / transformers initialise from the global generator
    with quiet_diffusers():
        unet = UNet2DConditionModel(**config.unet)
        vae = AutoencoderKL(**config.vae, scaling_factor=config.scaling_factor)
    text_encoder = CLIPTextModel(CLIPTextConfig(**config.text_encoder))
    sd = StableDiffusion(unet, vae, text_encoder, offline_clip_tokenizer(), config)
    for net in (sd.unet, sd.vae, sd.text_encoder):
        net.eval().requires_grad_(False)
    return sd


def save_tiny_checkpoint(
    sd: StableDiffusion, path: str | Path, lightning_extra: bool = True, extra: dict | None = None
) -> Path:
    """Save ``sd`` as one CompVis-layout file (``.ckpt`` like ``sd-v1-4.ckpt``, or ``.safetensors``).

    A ``.ckpt`` gets ``{"state_dict": ..., "global_step": ..., "callbacks": LightningExtra, **extra}``
    (the callback only when ``lightning_extra`` is set), so ``weights_only=True`` alone
    refuses it, as it refuses the real ``sd-v1-4.ckpt``.
    """
    more: dict[str, Any] = {"global_step": 470000, "epoch": 3}
    if lightning_extra:
        more["callbacks"] = {"ModelCheckpoint": LightningExtra("lightning callback state")}
    more.update(extra or {})
    return save_ldm_checkpoint(path, sd.unet, sd.vae, sd.text_encoder, extra=more)


def save_diffusers_folder(sd: StableDiffusion, folder: str | Path) -> Path:
    """Save ``sd`` as a diffusers folder (``unet/ vae/ text_encoder/ tokenizer/ scheduler/``).

    The scheduler config is SD v1's DDIM settings, so diffusers' own pipelines read the
    folder with the same convention our sampler uses.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with quiet_diffusers():
        sd.unet.save_pretrained(folder / "unet")
        sd.vae.save_pretrained(folder / "vae")
    sd.text_encoder.save_pretrained(folder / "text_encoder")
    sd.tokenizer.save_pretrained(folder / "tokenizer")
    c = sd.config
    scheduler = {
        "_class_name": "DDIMScheduler",
        "num_train_timesteps": c.num_train_timesteps,
        "beta_start": c.beta_start,
        "beta_end": c.beta_end,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "timestep_spacing": "leading",
        "prediction_type": "epsilon",
    }
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2))
    return folder


def write_tiny_sd(folder: str | Path, seed: int = 0, config: SDConfig | None = None) -> dict[str, Path]:
    """Write one tiny model three ways into ``folder`` and return their paths.

    Keys: ``"ckpt"`` (CompVis-layout ``tiny.ckpt`` with a Lightning-style extra object),
    ``"safetensors"`` (the same state dict as ``tiny.safetensors``), ``"diffusers"`` (a
    diffusers folder) and ``"config"`` (``tiny_config.json``, for ``--model-config``).
    """
    folder = Path(folder)
    sd = build_tiny_sd(seed, config)
    return {
        "ckpt": save_tiny_checkpoint(sd, folder / "tiny.ckpt"),
        "safetensors": save_tiny_checkpoint(sd, folder / "tiny.safetensors"),
        "diffusers": save_diffusers_folder(sd, folder / "diffusers"),
        "config": sd.config.save(folder / "tiny_config.json"),
    }
