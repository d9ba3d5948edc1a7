"""Atomic writes and safe reads of checkpoints and weight files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from dlcv.cli import UserError


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a file.

    ``state`` must hold only tensors, numbers, strings and containers of them, so
    that :func:`load_checkpoint` can read it with ``weights_only=True``.
    """
    return _atomic(Path(path), lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` onto the CPU; user errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, foreign pickle, not a torch file
        raise UserError(f"cannot read checkpoint {path}: {str(err).splitlines()[0]}") from None


def save_weights(
    state_dict: dict[str, torch.Tensor], path: str | Path, config: dict[str, Any] | None = None
) -> Path:
    """Save tensors as safetensors (atomically), with ``config`` as JSON in the metadata."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    metadata = {"config": json.dumps(config)} if config is not None else None
    return _atomic(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Read a safetensors file written by :func:`save_weights`: ``(tensors, config or None)``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as err:
        raise UserError(f"cannot read weights {path}: {str(err).splitlines()[0]}") from None
    config = json.loads(meta["config"]) if "config" in meta else None
    return tensors, config
