"""Tiny Stable Diffusion models written once per test session, offline.

``tiny_sd_ckpt`` is a CompVis-layout ``.ckpt`` (``{"state_dict": ..., Lightning-style
extras}``) that ``torch.load(weights_only=True)`` alone refuses: besides a callback
object it pickles a "trap" whose unpickling would call ``builtins.open`` and create
``tiny_sd_trap_marker``. A loader that runs code from the file leaves that marker behind.
"""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest

from dlcv.stable_diffusion.config import SDConfig, tiny_config
from dlcv.stable_diffusion.loading import StableDiffusion

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # any hub access fails instead of downloading
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class _Trap:
    """Unpickling this calls ``open(marker, "w")``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny_sd")


@pytest.fixture(scope="session")
def tiny_sd_trap_marker(tiny_sd_dir) -> Path:
    return tiny_sd_dir / "code_was_executed"


@pytest.fixture(scope="session")
def tiny_sd_model() -> StableDiffusion:
    """The reference tiny model (seed 0). Do not modify it; load a file for a model to change."""
    from dlcv.stable_diffusion.tiny import build_tiny_sd

    return build_tiny_sd(seed=0)


@pytest.fixture(scope="session")
def tiny_sd_config() -> SDConfig:
    return tiny_config()


@pytest.fixture(scope="session")
def tiny_sd_config_json(tiny_sd_dir, tiny_sd_model) -> Path:
    """The tiny architecture as JSON, for ``--model-config``."""
    return tiny_sd_model.config.save(tiny_sd_dir / "tiny_config.json")


@pytest.fixture(scope="session")
def tiny_sd_ckpt(tiny_sd_dir, tiny_sd_model, tiny_sd_trap_marker) -> Path:
    """CompVis-layout ``.ckpt`` of the tiny model with Lightning-style extra objects."""
    from dlcv.stable_diffusion.tiny import save_tiny_checkpoint

    path = save_tiny_checkpoint(
        tiny_sd_model, tiny_sd_dir / "tiny.ckpt", extra={"hparams": _Trap(tiny_sd_trap_marker)}
    )
    assert not tiny_sd_trap_marker.exists()
    return path


@pytest.fixture(scope="session")
def tiny_sd_safetensors(tiny_sd_dir, tiny_sd_model) -> Path:
    """The same CompVis-layout state dict as a ``.safetensors`` file."""
    from dlcv.stable_diffusion.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(tiny_sd_model, tiny_sd_dir / "tiny.safetensors")


@pytest.fixture(scope="session")
def tiny_sd_folder(tiny_sd_dir, tiny_sd_model) -> Path:
    """The tiny model as a diffusers folder (unet/ vae/ text_encoder/ tokenizer/ scheduler/)."""
    from dlcv.stable_diffusion.tiny import save_diffusers_folder

    return save_diffusers_folder(tiny_sd_model, tiny_sd_dir / "diffusers")
