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

import zipfile
from pathlib import Path
from typing import Any

from dlcv.cli import UserError
from dlcv.io.checkpoint import read_safetensors, torch_load, unsafe_globals


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
    if not zipfile.is_zipfile(path):
        return []  # legacy (non-zip) format: only weights_only=True is tried
    return unsafe_globals(path)


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU with every unknown global replaced by a stub.

    Zip-format files are memory-mapped, so a 4 GB checkpoint is not read twice.
    Raises :class:`UserError` naming the file and what it holds when it is not a torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    stubs = [(_stub_for(name), name) for name in unknown_globals(path)]
    return torch_load(path, "file", mmap=zipfile.is_zipfile(path), allow=stubs)


def load_tensors(path: str | Path) -> Any:
    """Read a ``.safetensors`` file (a flat dict of tensors) or any torch file via
    :func:`safe_torch_load`."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return read_safetensors(path, "file")[0]
    return safe_torch_load(path)
