"""Load Stable Diffusion v1 fully offline: CompVis ``.ckpt`` / ``.safetensors`` or a diffusers folder.

The networks are diffusers' ``UNet2DConditionModel`` and ``AutoencoderKL`` and
transformers' ``CLIPTextModel``; a CompVis checkpoint is converted with diffusers'
own ``convert_ldm_*_checkpoint`` functions, the architecture comes from
:mod:`dlcv.stable_diffusion.config` (shipped here, never fetched) and the tokenizer
from :func:`dlcv.clip_tokenizer.offline_clip_tokenizer`. Weights are read with
``weights_only=True`` (:mod:`dlcv.stable_diffusion.safe_load`).
"""

from __future__ import annotations

import importlib.util
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from dlcv.cli import ArgumentError, UserError, read_json
from dlcv.clip_tokenizer import load_clip_tokenizer, offline_clip_tokenizer
from dlcv.diffusion import NoiseSchedule
from dlcv.stable_diffusion.config import SD_V1_TEXT_ENCODER, SDConfig, sd_v1_config
from dlcv.stable_diffusion.safe_load import load_tensors

UNET_KEY = "model.diffusion_model.input_blocks.0.0.weight"
VAE_KEY = "first_stage_model.encoder.conv_in.weight"
TEXT_KEY = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
CHECKPOINT_SUFFIXES = (".ckpt", ".safetensors", ".pt", ".pth", ".bin")


@dataclass
class StableDiffusion:
    """The parts of a Stable Diffusion v1 model, ready for sampling or Textual Inversion."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    config: SDConfig

    @property
    def schedule(self) -> NoiseSchedule:
        """SD's "scaled linear" training schedule (1000 steps, 0.00085 .. 0.012)."""
        c = self.config
        return NoiseSchedule.scaled_linear(c.num_train_timesteps, c.beta_start, c.beta_end)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> StableDiffusion:
        with quiet_diffusers():
            for net in (self.unet, self.vae, self.text_encoder):
                net.to(device=device, dtype=dtype)
        return self


@contextmanager
def quiet_diffusers():
    """Silence diffusers' conversion chatter (EMA notes, deprecations) while converting."""
    log = logging.getLogger("diffusers")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """A Lightning checkpoint keeps the weights under ``state_dict`` (maybe nested)."""
    for _ in range(3):
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{path} holds no state dict (found {type(obj).__name__})")
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def check_sd_v1(state: dict[str, torch.Tensor], path: Path) -> None:
    """Raise a clear :class:`UserError` unless ``state`` looks like an SD v1 LatentDiffusion."""
    if any(k.startswith("conditioner.embedders.") for k in state):
        raise UserError(f"{path} looks like an SDXL checkpoint; only Stable Diffusion v1.x is supported")
    if any(k.startswith("cond_stage_model.model.") for k in state):
        raise UserError(
            f"{path} looks like a Stable Diffusion 2.x checkpoint (OpenCLIP text encoder); "
            "only Stable Diffusion v1.x is supported"
        )
    parts = ((UNET_KEY, "UNet"), (VAE_KEY, "autoencoder"), (TEXT_KEY, "CLIP text encoder"))
    missing = [name for key, name in parts if key not in state]
    if missing:
        raise UserError(
            f"{path} is not a Stable Diffusion v1 checkpoint: it has no {' / '.join(missing)} weights "
            f"(expected keys like '{UNET_KEY}')"
        )


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], what: str, path: Path, assign: bool) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        detail = []
        if wrong:
            k = wrong[0]
            detail.append(
                f"{len(wrong)} shape mismatches, e.g. {k}: file {tuple(state[k].shape)} "
                f"vs model {tuple(own[k].shape)}"
            )
        if missing:
            detail.append(f"{len(missing)} missing, e.g. {missing[0]}")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
        raise ArgumentError(
            f"{path}: the {what} weights do not fit the Stable Diffusion v1 architecture "
            f"({'; '.join(detail)}); pass `model_config` for another architecture"
        )
    model.load_state_dict(state, strict=True, assign=assign)


def _convert(state: dict[str, torch.Tensor], config: SDConfig, path: Path) -> tuple[dict, dict, dict]:
    """diffusers' own CompVis -> diffusers key conversion of the three networks."""
    try:
        with quiet_diffusers():
            unet = convert_ldm_unet_checkpoint(state, dict(config.unet), extract_ema=True)
            vae = convert_ldm_vae_checkpoint(state, dict(config.vae))
            text = convert_ldm_clip_checkpoint(state)
    except (KeyError, IndexError, ValueError, RuntimeError) as err:
        raise ArgumentError(
            f"{path}: the weights do not fit the configured Stable Diffusion architecture "
            f"({type(err).__name__}: {str(err)[:120]}); pass `model_config` for another architecture"
        ) from None
    return unet, vae, text


def _text_keys(text: dict[str, torch.Tensor], model: CLIPTextModel) -> dict[str, torch.Tensor]:
    """Match CompVis' ``text_model.*`` names to this transformers version's layout."""
    flat = not hasattr(model, "text_model")  # transformers >= 5.6 flattened CLIPTextModel
    out = {}
    for k, v in text.items():
        if k.endswith("position_ids"):
            continue  # a buffer, rebuilt by the model
        out[k.removeprefix("text_model.") if flat else k] = v
    return out


def _cast(state: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype) -> dict:
    return {
        k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in state.items()
    }


def load_from_checkpoint(
    path: str | Path,
    config: SDConfig | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> StableDiffusion:
    """Build SD v1 from a CompVis-layout ``.ckpt`` / ``.safetensors`` file, offline.

    The UNet is created on the ``meta`` device and takes the converted tensors
    directly (cast to ``dtype`` on ``device`` first), so the 3.4 GB fp32 UNet is
    never allocated twice. The checkpoint's EMA weights are used when it has them.
    """
    path = Path(path)
    config = config or sd_v1_config()
    device = torch.device(device)
    state = _unwrap_state_dict(load_tensors(path), path)
    check_sd_v1(state, path)
    unet_sd, vae_sd, text_sd = _convert(state, config, path)
    del state

    with torch.device("meta"):
        unet = UNet2DConditionModel(**config.unet)
    _load_into(unet, _cast(unet_sd, device, dtype), "UNet", path, assign=True)
    del unet_sd
    vae = AutoencoderKL(**config.vae, scaling_factor=config.scaling_factor)
    _load_into(vae, vae_sd, "autoencoder", path, assign=False)
    text_encoder = CLIPTextModel(CLIPTextConfig(**config.text_encoder))
    _load_into(text_encoder, _text_keys(text_sd, text_encoder), "text encoder", path, assign=False)
    sd = StableDiffusion(unet, vae, text_encoder, offline_clip_tokenizer(), config)
    return sd.to(device, dtype)


def load_from_diffusers(
    folder: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> StableDiffusion:
    """Build SD v1 from a diffusers folder (``unet/``, ``vae/``, ``text_encoder/``), offline."""
    from safetensors import SafetensorError

    folder = Path(folder)
    for sub in ("unet", "vae", "text_encoder"):
        if not (folder / sub / "config.json").is_file():
            raise UserError(
                f"{folder} is not a diffusers Stable Diffusion folder: {sub}/config.json is missing"
            )
    kwargs = {"local_files_only": True, "torch_dtype": dtype}
    # diffusers defaults to low_cpu_mem_usage=True, which needs accelerate, and warns when it is
    # missing (then loads as with False): ask for what it will do anyway.
    lean = {"low_cpu_mem_usage": importlib.util.find_spec("accelerate") is not None}
    try:
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **kwargs, **lean)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", **kwargs, **lean)
        text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", **kwargs)
    except (OSError, ValueError, SafetensorError) as err:  # SafetensorError: a damaged or hostile file
        raise UserError(f"cannot load the diffusers folder {folder}: {str(err).splitlines()[0]}") from None
    u, v = unet.config, vae.config
    config = SDConfig(
        unet=dict(u),
        vae={
            k: v[k]
            for k in (
                "sample_size",
                "in_channels",
                "out_channels",
                "down_block_types",
                "up_block_types",
                "block_out_channels",
                "layers_per_block",
                "latent_channels",
                "norm_num_groups",
                "act_fn",
            )
        },
        text_encoder={k: getattr(text_encoder.config, k) for k in SD_V1_TEXT_ENCODER},
        scaling_factor=float(v.get("scaling_factor", 0.18215)),
        resolution=int(u.sample_size) * 2 ** (len(v.block_out_channels) - 1),
    )
    config.unet = {k: val for k, val in config.unet.items() if not k.startswith("_")}
    _read_scheduler(folder, config)
    sd = StableDiffusion(unet, vae, text_encoder, load_clip_tokenizer(folder), config)
    return sd.to(device, dtype)


def _read_scheduler(folder: Path, config: SDConfig) -> None:
    """Take the training schedule from ``scheduler/scheduler_config.json`` when present."""
    path = folder / "scheduler" / "scheduler_config.json"
    if not path.is_file():
        return
    data = read_json(path, "scheduler config")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected an object of scheduler settings")
    if data.get("beta_schedule", "scaled_linear") != "scaled_linear":
        raise UserError(f"{path}: only the 'scaled_linear' schedule of SD v1 is supported")
    config.num_train_timesteps = int(data.get("num_train_timesteps", config.num_train_timesteps))
    config.beta_start = float(data.get("beta_start", config.beta_start))
    config.beta_end = float(data.get("beta_end", config.beta_end))


# fmt: off
def load_stable_diffusion(
    path: str | Path, config: SDConfig | None = None,
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
) -> StableDiffusion:
    # fmt: on
    """Load SD v1 from a CompVis checkpoint file or a diffusers folder, never touching the network.

    ``config`` describes the architecture of a checkpoint file (default: SD v1.x);
    a diffusers folder carries its own. Errors (missing file, not SD v1, too little
    memory) are :class:`UserError` with one clear line. The networks are returned in
    eval mode with gradients off.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"Stable Diffusion checkpoint not found: {path}")
    try:
        if path.is_dir():
            sd = load_from_diffusers(path, device, dtype)
        else:
            sd = load_from_checkpoint(path, config, device, dtype)
    except (torch.cuda.OutOfMemoryError, MemoryError):
        where = "GPU" if torch.device(device).type == "cuda" else "CPU"
        size = "2.2 GB" if dtype in (torch.float16, torch.bfloat16) else "4.3 GB"
        raise ArgumentError(
            f"not enough {where} memory to load {path} (SD v1 needs about {size} in "
            f"{str(dtype).removeprefix('torch.')}); free memory or use another `device`"
        ) from None
    for net in (sd.unet, sd.vae, sd.text_encoder):
        net.eval().requires_grad_(False)
    return sd
