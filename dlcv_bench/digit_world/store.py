"""World folders: the diffusers folder that ``PB3/train.py --sd-ckpt`` and inference load
(:func:`save_world`), and the compact shipped form (:func:`export_world`, :func:`load_shipped_world`)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import CLIPTextModel

from dlcv.io.checkpoint import load_weights, save_weights
from dlcv.stable_diffusion.loading import StableDiffusion
from dlcv.stable_diffusion.tiny import save_diffusers_folder
from dlcv_bench.digit_world.model import build_world, world_config

#: The trained world of ``make demo-ti`` (:func:`export_world`, :func:`load_shipped_world`).
SHIPPED_WORLD = Path(__file__).resolve().parent / "shipped"


def _token_table_key(text_encoder: CLIPTextModel) -> str:
    """The state-dict name of the token-embedding table (it differs between transformers versions)."""
    table = text_encoder.get_input_embeddings().weight
    return next(name for name, p in text_encoder.named_parameters() if p is table)


def export_world(sd: StableDiffusion, folder: str | Path, info: dict) -> Path:
    """Write a trained world compactly: ``unet.safetensors`` (float16), ``text_encoder.safetensors``
    (its transformer, float32, without the token table that :func:`build_world` redraws from the
    seed) and ``world.json`` (``info``: at least ``seed`` and ``architecture``, the keyword
    arguments of :func:`world_config`; also how it was trained and what it measured)."""
    if not {"seed", "architecture"} <= set(info):
        raise ValueError("info needs 'seed' and 'architecture'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    skip = _token_table_key(sd.text_encoder)
    unet = {k: v.to(torch.float16) for k, v in sd.unet.state_dict().items()}
    save_weights(unet, folder / "unet.safetensors")
    save_weights(
        {k: v.float() for k, v in sd.text_encoder.state_dict().items() if k != skip},
        folder / "text_encoder.safetensors",
    )
    (folder / "world.json").write_text(json.dumps(info, indent=2) + "\n")
    return folder


def load_shipped_world(folder: str | Path = SHIPPED_WORLD) -> tuple[StableDiffusion, dict]:
    """The world written by :func:`export_world` (float32) and its ``world.json``."""
    folder = Path(folder)
    info = json.loads((folder / "world.json").read_text())
    sd = build_world(info["seed"], world_config(**info["architecture"]))
    unet, _ = load_weights(folder / "unet.safetensors")
    sd.unet.load_state_dict({k: v.float() for k, v in unet.items()})
    text, _ = load_weights(folder / "text_encoder.safetensors")
    missing, unexpected = sd.text_encoder.load_state_dict(text, strict=False)
    if [k for k in missing if k != _token_table_key(sd.text_encoder)] or unexpected:
        raise ValueError(f"{folder}: the text encoder's weights do not fit ({missing=}, {unexpected=})")
    return sd, info


def save_world(sd: StableDiffusion, folder: str | Path) -> Path:
    """Write the world as a diffusers folder (what ``PB3/train.py --sd-ckpt`` and inference load)."""
    return save_diffusers_folder(sd, folder)
