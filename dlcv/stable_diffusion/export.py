"""Write diffusers / transformers SD v1 weights back in CompVis' original layout.

diffusers ships the CompVis -> diffusers conversion (used by
:mod:`dlcv.stable_diffusion.loading`) but not the way back. This module maps each
diffusers key to its ``model.diffusion_model.*`` / ``first_stage_model.*`` /
``cond_stage_model.transformer.*`` name, so a model can be saved as the single
``.ckpt`` (or ``.safetensors``) file that CompVis-era tools read. The tests use it to
build CompVis-layout checkpoints of tiny random models.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer."

_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _unet_key(key: str, layers: int, up_has_attention: list[bool]) -> str:
    parts = key.split(".")
    for old, new in _UNET_TOP.items():
        if key.startswith(old + "."):
            return new + key[len(old) :]
    if parts[0] == "mid_block":
        index = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[".".join(parts[1:3])]
        rest = parts[3:]
        if parts[1] == "resnets":
            rest = [_UNET_RESNET.get(rest[0], rest[0]), *rest[1:]]
        return ".".join([f"middle_block.{index}", *rest])
    block, kind = int(parts[1]), parts[2]
    if parts[0] == "down_blocks":
        if kind == "downsamplers":  # down_blocks.b.downsamplers.0.conv.* -> input_blocks.i.0.op.*
            return ".".join([f"input_blocks.{(block + 1) * (layers + 1)}.0.op", *parts[5:]])
        index = 1 + block * (layers + 1) + int(parts[3])
        name = "input_blocks"
    elif parts[0] == "up_blocks":
        if kind == "upsamplers":  # the upsampler follows the block's last resnet (and attention)
            slot = 2 if up_has_attention[block] else 1
            index = block * (layers + 1) + layers
            return ".".join([f"output_blocks.{index}.{slot}", *parts[4:]])
        index = block * (layers + 1) + int(parts[3])
        name = "output_blocks"
    else:
        raise KeyError(f"unexpected UNet key {key}")
    rest = parts[4:]
    if kind == "resnets":
        return ".".join([f"{name}.{index}.0", _UNET_RESNET.get(rest[0], rest[0]), *rest[1:]])
    return ".".join([f"{name}.{index}.1", *rest])  # attentions keep their inner names


def unet_to_ldm(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    """The UNet's weights under CompVis' ``openaimodel.UNetModel`` names (without prefix)."""
    layers = int(unet.config.layers_per_block)
    up_attn = ["CrossAttn" in t for t in unet.config.up_block_types]
    return {_unet_key(k, layers, up_attn): v for k, v in unet.state_dict().items()}


def _vae_key(key: str, num_blocks: int) -> str:
    parts = key.split(".")
    coder, rest = parts[0], parts[1:]
    if rest[0] in ("conv_norm_out",):
        rest = ["norm_out", *rest[1:]]
    elif rest[0] == "mid_block":
        if rest[1] == "resnets":
            rest = [f"mid.block_{int(rest[2]) + 1}", *rest[3:]]
        else:
            inner = ".".join(rest[3:-1])
            rest = ["mid.attn_1", _VAE_ATTENTION[inner], rest[-1]]
    elif rest[0] in ("down_blocks", "up_blocks"):
        i = int(rest[1])
        level = i if rest[0] == "down_blocks" else num_blocks - 1 - i
        stage = "down" if rest[0] == "down_blocks" else "up"
        if rest[2] == "resnets":
            tail = ["nin_shortcut" if p == "conv_shortcut" else p for p in rest[4:]]
            rest = [f"{stage}.{level}.block.{rest[3]}", *tail]
        else:  # downsamplers.0.conv.* / upsamplers.0.conv.*
            rest = [f"{stage}.{level}.{'downsample' if stage == 'down' else 'upsample'}", *rest[4:]]
    if coder not in ("encoder", "decoder"):
        return key  # quant_conv / post_quant_conv
    return ".".join([coder, *rest])


def vae_to_ldm(vae: AutoencoderKL) -> dict[str, torch.Tensor]:
    """The autoencoder's weights under CompVis' ``AutoencoderKL`` names (without prefix).

    CompVis' mid-block attention uses 1x1 convolutions where diffusers uses linear
    layers, so those weights get two trailing singleton dimensions.
    """
    num_blocks = len(vae.config.block_out_channels)
    out = {}
    for k, v in vae.state_dict().items():
        new = _vae_key(k, num_blocks)
        if ".mid.attn_1." in new and new.endswith(".weight") and v.ndim == 2:
            v = v[:, :, None, None]
        out[new] = v
    return out


def text_encoder_to_ldm(text_encoder: CLIPTextModel) -> dict[str, torch.Tensor]:
    """CLIP's text tower under ``FrozenCLIPEmbedder``'s ``transformer.text_model.*`` names."""
    out = {}
    for k, v in text_encoder.state_dict().items():
        out[k if k.startswith("text_model.") else "text_model." + k] = v
    return out


def to_ldm_state_dict(
    unet: UNet2DConditionModel, vae: AutoencoderKL, text_encoder: CLIPTextModel
) -> dict[str, torch.Tensor]:
    """One CompVis ``LatentDiffusion`` state dict for the three networks."""
    state = {UNET_PREFIX + k: v for k, v in unet_to_ldm(unet).items()}
    state.update({VAE_PREFIX + k: v for k, v in vae_to_ldm(vae).items()})
    state.update({TEXT_PREFIX + k: v for k, v in text_encoder_to_ldm(text_encoder).items()})
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_ldm_checkpoint(
    path: str | Path,
    unet: UNet2DConditionModel,
    vae: AutoencoderKL,
    text_encoder: CLIPTextModel,
    extra: dict | None = None,
) -> Path:
    """Save the three networks as one CompVis-layout file.

    ``.safetensors`` gets the flat state dict; any other suffix a ``torch.save``'d
    ``{"state_dict": ..., **extra}`` like Lightning's ``.ckpt`` files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = to_ldm_state_dict(unet, vae, text_encoder)
    if path.suffix == ".safetensors":
        from dlcv.io.checkpoint import save_weights

        save_weights(state, path)  # atomic, and the file follows the umask
    else:
        torch.save({"state_dict": state, **(extra or {})}, path)
    return path
