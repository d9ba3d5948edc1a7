"""Read tensors from ``.ckpt`` / ``.pt`` / ``.safetensors`` files without running their code.

PyTorch Lightning checkpoints (CompVis' ``sd-v1-4.ckpt`` among them) and the
official Textual Inversion code pickle training-framework objects (callbacks,
``ParameterDict``, NumPy scalars) next to the tensors. ``torch.load(weights_only=True)``
refuses such files, and a plain ``torch.load`` would execute whatever the pickle
names. Here the pickle is first scanned (without loading) for the globals that
torch's ``weights_only`` unpickler does not allow; each is replaced by :class:`Stub`,
a class that only records its constructor arguments and state, and the file is then
read by torch's own ``weights_only`` unpickler. No function or class from the file
is ever imported or called.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from dlcv.cli import UserError


class Stub:
    """Stands in for any class or function a checkpoint names but we do not trust.

    It accepts every construction and ``BUILD`` call and remembers what it got:
    ``args`` (constructor or call arguments), ``state`` (the pickled ``__dict__``)
    and ``items`` (``__setitem__`` / ``append``), so callers can still read tensors a
    foreign object held, e.g. ``ParameterDict``'s ``state["_parameters"]``.
    """

    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Stub:
        obj = super().__new__(cls)
        obj.args, obj.state, obj.items = args, None, {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.items[len(self.items)] = value

    def extend(self, values: Any) -> None:
        for v in values:
            self.append(v)

    def __repr__(self) -> str:
        return f"Stub({self.global_name})"


def _stub_for(name: str) -> type:
    return type(f"Stub_{name.replace('.', '_')}", (Stub,), {"global_name": name})


def unknown_globals(path: str | Path) -> list[str]:
    """The globals a zip-format torch file names beyond what ``weights_only`` allows."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except (ValueError, RuntimeError, zipfile.BadZipFile, pickle.UnpicklingError):
        return []  # legacy (non-zip) format: only weights_only=True is tried


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with every unknown global replaced by a stub.

    Zip-format files are memory-mapped, so a 4 GB checkpoint is not read twice.
    Raises :class:`UserError` naming the file when it is not a torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    stubs = [(_stub_for(name), name) for name in unknown_globals(path)]
    mmap = zipfile.is_zipfile(path)
    try:
        with torch.serialization.safe_globals(stubs):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except MemoryError:
        raise UserError(f"not enough memory to read {path}") from None
    except Exception as err:  # not a torch file, truncated, or an unsupported pickle
        text = str(err).strip()
        first = text.splitlines()[0] if text and not isinstance(err, KeyError) else ""
        why = f" ({first[:200]})" if first else ""
        raise UserError(
            f"cannot read {path}: not a PyTorch checkpoint, or a truncated or unsupported one{why}"
        ) from None


def load_tensors(path: str | Path) -> Any:
    """Read a ``.safetensors`` file (a flat dict of tensors) or any torch file via
    :func:`safe_torch_load`."""
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise UserError(f"file not found: {path}")
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise UserError(f"cannot read {path} as safetensors: {err}") from None
        except MemoryError:
            raise UserError(f"not enough memory to read {path}") from None
    return safe_torch_load(path)
