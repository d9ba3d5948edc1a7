"""Randomly initialised CLIP models of a given size, for tests, benchmarks and smoke runs.

They carry no knowledge: use them to check plumbing and speed, never accuracy.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel

from dlcv.clip_tokenizer import VOCAB_SIZE, offline_clip_tokenizer


def clip_config(
    width: int = 32,
    layers: int = 2,
    heads: int = 2,
    image_size: int = 32,
    patch_size: int = 8,
    projection_dim: int = 16,
) -> CLIPConfig:
    """A CLIP config with CLIP's real vocabulary (so the real tokenizer works) and small towers."""
    common = {
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
    }
    return CLIPConfig(
        text_config={**common, "vocab_size": VOCAB_SIZE, "max_position_embeddings": 77},
        vision_config={**common, "image_size": image_size, "patch_size": patch_size},
        projection_dim=projection_dim,
    )


def vit_b32_config() -> CLIPConfig:
    """The architecture of CLIP ViT-B/32 (Radford et al., 2021, Tables 19-20), ~151M parameters."""
    return CLIPConfig(
        text_config={
            "vocab_size": VOCAB_SIZE,
            "hidden_size": 512,
            "intermediate_size": 2048,
            "num_hidden_layers": 12,
            "num_attention_heads": 8,
            "max_position_embeddings": 77,
        },
        vision_config={
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": 224,
            "patch_size": 32,
        },
        projection_dim=512,
        logit_scale_init_value=math.log(100.0),
    )


def random_clip(config: CLIPConfig | None = None, seed: int = 0) -> CLIPModel:
    """A CLIPModel with seeded random weights (transformers' own initialisation)."""
    torch.manual_seed(seed)
    return CLIPModel(config or clip_config()).eval()


def save_hf_folder(model: CLIPModel, folder: str | Path, tokenizer_files: bool = True) -> Path:
    """Save ``model`` as a Hugging Face folder, with CLIP's tokenizer files when asked."""
    folder = Path(folder)
    model.save_pretrained(folder)
    if tokenizer_files:
        offline_clip_tokenizer(model.config.text_config.max_position_embeddings).save_pretrained(folder)
    return folder
