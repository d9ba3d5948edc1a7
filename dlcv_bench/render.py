"""What the renderers of ``scripts/render_docs.py`` share: reading a results file of ``docs/results/`` and
formatting its figures. Each problem's renderers may live in their own module of :mod:`dlcv_bench`, with a
``RENDERERS`` mapping (block name -> function returning the block's Markdown) that ``render_docs.py``
merges into its own."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"


def load(name: str) -> dict:
    """``docs/results/NAME`` as JSON; a missing file stops the rendering with one line naming it."""
    path = RESULTS / name
    if not path.is_file():
        raise SystemExit(f"error: {path.relative_to(REPO)} not found (its bench command writes it)")
    return json.loads(path.read_text())


def acc_ci(stats: dict) -> str:
    """``0.962 [0.949, 0.972]`` (95% Wilson interval) from ``{"acc", "ci"}``."""
    low, high = stats["ci"]
    return f"{stats['acc']:.3f} [{low:.3f}, {high:.3f}]"


def mean_range(values: list[float]) -> str:
    """``0.958 (0.950 - 0.966)``: the mean and the range over seeds."""
    mean = sum(values) / len(values)
    return f"{mean:.3f} ({min(values):.3f} - {max(values):.3f})" if len(values) > 1 else f"{mean:.3f}"
