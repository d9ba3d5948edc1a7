"""The process-wide random states a training step may draw from, for checkpoints.

Besides the trainer's own generator (handed to ``next_batch`` and ``loss_fn``), a step may
draw from torch's global CPU generator (``nn.Dropout``, ``torch.rand`` without a generator),
the CUDA generator of its device, Python's :mod:`random` and numpy's global generator.
:func:`capture` reads them all as plain data (tensors, numbers: what ``torch.load`` reads
with ``weights_only=True``); :func:`restore` sets them back, so that a resumed run draws
what the uninterrupted run would have drawn. :func:`preserved` runs a block (a sample
grid, an export) without moving them.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import torch


def capture(device: torch.device) -> dict[str, Any]:
    """The global random states a step on ``device`` may draw from (CUDA's only on CUDA)."""
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": None,
    }
    with contextlib.suppress(ImportError):
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        state["numpy"] = {
            "kind": str(kind),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        }
    return state


def restore(state: dict[str, Any], device: torch.device) -> None:
    """Set the states :func:`capture` read (those it holds: a CUDA state only on CUDA)."""
    if state.get("torch") is not None:
        torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    python = state.get("python")
    if python is not None:
        random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
    numpy = state.get("numpy")
    if numpy is not None:
        with contextlib.suppress(ImportError):
            import numpy as np

            keys = numpy["keys"].numpy().astype(np.uint32)
            np.random.set_state((numpy["kind"], keys, numpy["pos"], numpy["has_gauss"], numpy["cached"]))


@contextlib.contextmanager
def preserved(device: torch.device) -> Iterator[None]:
    """Run the block and then put every global random state back as it was before it."""
    state = capture(device)
    try:
        yield
    finally:
        restore(state, device)
