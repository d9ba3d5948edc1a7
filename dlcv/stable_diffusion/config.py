"""Architecture configurations of Stable Diffusion v1, shipped with the code.

Stable Diffusion v1 (Rombach et al., "High-Resolution Image Synthesis with Latent
Diffusion Models", CVPR 2022) is three networks: a KL autoencoder (8x downsampling,
4 latent channels), a text-conditioned UNet on the latents and the text tower of
CLIP ViT-L/14. :func:`sd_v1_config` is the configuration of v1.1-v1.5 (and of
CompVis' ``v1-inference.yaml``) in diffusers / transformers terms, so a CompVis
``.ckpt`` can be loaded without fetching anything. :func:`tiny_config` keeps the
same layout with tiny widths, for tests and benchmarks.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlcv.cli import UserError, read_json

SD_V1_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,  # diffusers' name for the number of heads in SD v1
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "center_input_sample": False,
}

SD_V1_VAE: dict[str, Any] = {
    "sample_size": 512,
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "act_fn": "silu",
}

SD_V1_TEXT_ENCODER: dict[str, Any] = {  # CLIP ViT-L/14's text tower
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
}


@dataclass
class SDConfig:
    """Everything needed to build a Stable Diffusion v1-family model without downloads.

    ``unet`` / ``vae`` are keyword arguments of diffusers' ``UNet2DConditionModel`` /
    ``AutoencoderKL``, ``text_encoder`` of transformers' ``CLIPTextConfig``. The noise
    schedule is SD's "scaled linear" one (``beta_start``, ``beta_end``), and latents are
    multiplied by ``scaling_factor`` (0.18215 for SD v1) before diffusion.
    """

    unet: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(SD_V1_UNET))
    vae: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(SD_V1_VAE))
    text_encoder: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(SD_V1_TEXT_ENCODER))
    scaling_factor: float = 0.18215
    resolution: int = 512
    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012

    @property
    def vae_scale(self) -> int:
        """How many pixels one latent covers along each side (8 for SD v1)."""
        return 2 ** (len(self.vae["block_out_channels"]) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.unet["in_channels"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        """Write the configuration as JSON (readable by :func:`load_config`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path


def sd_v1_config() -> SDConfig:
    """Stable Diffusion v1.x (v1.4 included): the default everywhere."""
    return SDConfig()


def tiny_config(
    channels: tuple[int, ...] = (32, 64),
    text_width: int = 32,
    layers_per_block: int = 1,
    resolution: int = 32,
) -> SDConfig:
    """A few-megabyte model with SD v1's layout (cross-attention blocks, CLIP's vocab).

    Like SD v1, every level but the deepest has cross-attention; ``channels`` with
    four entries and ``layers_per_block=2`` give SD v1's exact block structure.
    Random weights only: for plumbing tests and speed comparisons, never for images.
    """
    ch = list(channels)
    n = len(ch)
    return SDConfig(
        unet={
            **SD_V1_UNET,
            "sample_size": resolution // 2 ** (n - 1),
            "down_block_types": ["CrossAttnDownBlock2D"] * (n - 1) + ["DownBlock2D"],
            "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (n - 1),
            "block_out_channels": ch,
            "layers_per_block": layers_per_block,
            "cross_attention_dim": text_width,
            "attention_head_dim": 8,
        },
        vae={
            **SD_V1_VAE,
            "sample_size": resolution,
            "down_block_types": ["DownEncoderBlock2D"] * n,
            "up_block_types": ["UpDecoderBlock2D"] * n,
            "block_out_channels": ch,
            "layers_per_block": layers_per_block,
        },
        text_encoder={
            **SD_V1_TEXT_ENCODER,
            "hidden_size": text_width,
            "intermediate_size": 2 * text_width,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "projection_dim": text_width,
        },
        resolution=resolution,
    )


def load_config(path: str | Path) -> SDConfig:
    """Read an :class:`SDConfig` written by :meth:`SDConfig.save`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"model config not found: {path}")
    try:
        data = read_json(path, "model config")
        config = SDConfig(**data)
    except UserError:
        raise
    except (ValueError, TypeError) as err:
        raise UserError(f"{path}: not a Stable Diffusion model config ({err})") from None
    for part in ("unet", "vae", "text_encoder"):
        if not isinstance(getattr(config, part), dict):
            raise UserError(f"{path}: '{part}' must be an object of model settings")
    return config
