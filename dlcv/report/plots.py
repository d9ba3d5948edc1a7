"""The report's own images: training curves (matplotlib, no pyplot state) and contact sheets."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dlcv.io.checkpoint import atomic_write
from dlcv.io.images import load_rgb, save_grid


@dataclass
class MetricsLog:
    """One training run's ``metrics.jsonl``: steps, cumulative seconds (if logged), series, notes."""

    steps: list[int] = field(default_factory=list)
    seconds: list[float] | None = None
    series: dict[str, list[float]] = field(default_factory=dict)  # "loss", then any accuracy
    notes: list[str] = field(default_factory=list)

    def last(self, key: str) -> float | None:
        values = self.series.get(key) or []
        return values[-1] if values else None


def _is_accuracy(key: str) -> bool:
    return "acc" in key.lower()


def read_metrics(path: str | Path) -> MetricsLog:
    """Read a trainer's ``metrics.jsonl`` (``{"step", "loss", ...}`` per line), tolerating damage.

    Unreadable lines (a run killed while writing) are skipped and counted in ``notes``. When
    the steps start again from below (a new run appended to the file), only the last run is
    kept. ``elapsed_s`` restarting within a run (a resumed run) is made cumulative; logs
    without it have ``seconds = None``. Accuracy keys (any key with "acc") become series too.
    """
    records, bad = [], 0
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError
            step = int(record["step"])
            loss = float(record["loss"])
        except (ValueError, KeyError, TypeError, RecursionError):
            bad += 1
            continue
        if not math.isfinite(loss):
            bad += 1
            continue
        records.append((step, record))
    log = MetricsLog()
    if bad:
        log.notes.append(f"{bad} unreadable line(s) skipped")
    starts = [i for i in range(1, len(records)) if records[i][0] <= records[i - 1][0]]
    if starts:
        log.notes.append(f"the file holds {len(starts) + 1} runs; the last one is shown")
        records = records[starts[-1] :]
    timed = bool(records) and all("elapsed_s" in r for _, r in records)
    seconds: list[float] = []
    offset, previous = 0.0, 0.0
    for step, record in records:
        log.steps.append(step)
        log.series.setdefault("loss", []).append(float(record["loss"]))
        for key, value in record.items():
            if _is_accuracy(key) and isinstance(value, int | float):
                log.series.setdefault(key, []).append(float(value))
        if timed:
            t = float(record["elapsed_s"])
            if t < previous:  # resumed: this process's clock started again
                offset += previous
            previous = t
            seconds.append(offset + t)
    log.series = {k: v for k, v in log.series.items() if len(v) == len(log.steps)}
    log.seconds = seconds if timed else None
    return log


def _smooth(values: Sequence[float]) -> list[float]:
    """An exponential moving average over about a twentieth of the points."""
    alpha = min(1.0, 20 / max(len(values), 1))
    out, acc = [], values[0]
    for v in values:
        acc = alpha * v + (1 - alpha) * acc
        out.append(acc)
    return out


def plot_training_curves(logs: dict[str, MetricsLog], out: str | Path, title: str) -> Path:
    """Loss against steps and, where logged, against training time; one line per run.

    Accuracy series share the plot on a right-hand axis. Written as a PNG at ``out``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    logs = {name: log for name, log in logs.items() if log.steps}
    timed = any(log.seconds for log in logs.values())
    fig = Figure(figsize=(10 if timed else 5.5, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if timed else 1, squeeze=False)[0]
    fig.suptitle(title)
    for ax, x_kind in zip(axes, ("steps", "minutes")):
        acc_ax = None
        for k, (name, log) in enumerate(logs.items()):
            x = log.steps if x_kind == "steps" else [s / 60 for s in (log.seconds or [])]
            if not x:
                continue
            colour = f"C{k}"
            loss = log.series["loss"]
            label = f"{name} loss" if len(logs) > 1 else "loss"
            if len(loss) > 20:
                ax.plot(x, loss, color=colour, alpha=0.25, linewidth=0.8)
                ax.plot(x, _smooth(loss), color=colour, label=f"{label} (smoothed)")
            else:
                ax.plot(x, loss, color=colour, marker="o", markersize=3, label=label)
            for j, key in enumerate(k for k in log.series if k != "loss"):
                acc_ax = acc_ax or ax.twinx()
                acc_ax.plot(
                    x,
                    log.series[key],
                    color=f"C{k}",
                    linestyle=("--", ":", "-.")[j % 3],
                    label=f"{name} {key}" if len(logs) > 1 else key,
                )
        values = [v for log in logs.values() for v in log.series["loss"]]
        if values and min(values) > 0 and max(values) / min(values) > 10:
            ax.set_yscale("log")
        ax.set_xlabel("training step" if x_kind == "steps" else "training time (minutes)")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if acc_ax is not None:
            acc_ax.set_ylabel("accuracy")
            more = acc_ax.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        if handles:
            ax.legend(handles, labels, fontsize=8)
    return atomic_write(Path(out), lambda tmp: fig.savefig(tmp, format=Path(out).suffix.lstrip(".") or "png"))


def contact_sheet(files: Sequence[Path], out: str | Path, tile: int = 96, per_row: int = 5) -> Path:
    """The images ``files`` as one PNG grid of ``tile``-pixel thumbnails, ``per_row`` per row."""
    images = torch.stack([load_rgb(p, tile) for p in files])
    return save_grid(images, out, nrow=per_row)
