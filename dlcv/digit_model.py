"""Problem 1's model files: named configs, building the UNet, saving and finding trained weights.

A trained model is one safetensors file (EMA weights) whose metadata holds the
config it was built from (``model``, ``diffusion``, ``sample`` sections), so
inference needs nothing but the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dlcv.cli import UserError
from dlcv.diffusion import NoiseSchedule
from dlcv.models.digit_unet import DigitUNet, DigitUNetConfig
from dlcv.training.checkpoint import load_weights, save_weights

CONFIG_DIR = Path(__file__).parent / "configs"
PRESETS = ("default", "demo", "tiny")
MODEL_FILE = "model.safetensors"
REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout (the package is installed editable)
DEFAULT_CKPT = REPO_ROOT / "checkpoints" / "pb1" / MODEL_FILE
CKPT_ENV = "PB1_CKPT"


def load_config(name_or_path: str = "default", overrides: list[str] | None = None) -> DictConfig:
    """A preset (``default``, ``demo``, ``tiny``) or a YAML file, with ``key=value`` overrides."""
    path = CONFIG_DIR / f"pb1_{name_or_path}.yaml" if name_or_path in PRESETS else Path(name_or_path)
    if not path.is_file():
        raise UserError(f"--config: {name_or_path} is neither a preset ({', '.join(PRESETS)}) nor a file")
    try:
        cfg = OmegaConf.load(path)
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        DigitUNetConfig(**OmegaConf.to_container(cfg.model))  # unknown model keys fail here
    except (OmegaConfBaseException, TypeError, ValueError) as err:
        raise UserError(f"config {path}: {str(err).splitlines()[0]}") from None
    return cfg


def build_model(cfg: DictConfig | dict[str, Any]) -> DigitUNet:
    model_cfg = cfg["model"]
    if isinstance(model_cfg, DictConfig):
        model_cfg = OmegaConf.to_container(model_cfg)
    return DigitUNet(DigitUNetConfig(**model_cfg))


def build_schedule(cfg: DictConfig | dict[str, Any]) -> NoiseSchedule:
    d = cfg["diffusion"]
    return NoiseSchedule.linear(int(d["num_train_timesteps"]), float(d["beta_start"]), float(d["beta_end"]))


def export_model(model: DigitUNet, out_dir: Path, cfg: DictConfig | dict[str, Any]) -> Path:
    """Write ``out_dir/model.safetensors``: the weights plus the config needed to use them."""
    plain = OmegaConf.to_container(cfg) if isinstance(cfg, DictConfig) else dict(cfg)
    keep = {k: plain[k] for k in ("model", "diffusion", "sample")}
    return save_weights(model.state_dict(), Path(out_dir) / MODEL_FILE, keep)


def resolve_checkpoint(ckpt: str | Path | None) -> Path:
    """``--ckpt``, else ``$PB1_CKPT``, else the checkout's ``checkpoints/pb1/model.safetensors``."""
    chosen = ckpt or os.environ.get(CKPT_ENV) or DEFAULT_CKPT
    path = Path(chosen)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise UserError(
            f"no PB1 model at {path}: train one with `python PB1/train.py --data hw2_data/digits "
            f"--out {path.parent}` (or pass --ckpt / set {CKPT_ENV})"
        )
    return path


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[DigitUNet, dict[str, Any]]:
    """Load a model written by :func:`export_model`; returns ``(model in eval mode, config)``."""
    tensors, cfg = load_weights(path)
    if not cfg or "model" not in cfg:
        raise UserError(f"{path} holds no PB1 model config: was it written by PB1/train.py?")
    model = build_model(cfg)
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        raise UserError(f"{path} does not fit its own config: {str(err).splitlines()[0]}") from None
    return model.to(device).eval(), cfg
