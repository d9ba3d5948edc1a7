"""Build the report: resolve the inputs, collect the sections, place the images, write both pages."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from dlcv.cli import UserError
from dlcv.io.checkpoint import save_text
from dlcv.report.collect import collect
from dlcv.report.document import TITLE, Report
from dlcv.report.render import render_html, render_markdown
from dlcv.report.sources import SLOTS, Inputs, show

HTML_NAME = "index.html"
MARKDOWN_NAME = "report.md"
IMG_DIR = "img"


def describe_inputs(inputs: Inputs) -> list[str]:
    """One line per source folder, flag-given input and extra data folder."""
    lines = [source.describe() for source in inputs.sources]
    lines += [
        f"{SLOTS[slot][0]}: `{show(path)}` (`--{slot.replace('_', '-')}`)"
        for slot, path in inputs.found.items()
        if slot in inputs.given
    ]
    if inputs.face_gt is not None:
        lines.append(f"ground-truth faces: `{show(inputs.face_gt)}`")
    if inputs.ti_input is not None:
        lines.append(f"Textual Inversion prompts: `{show(inputs.ti_input)}`")
    return lines


def place_figures(report: Report, img_dir: Path) -> None:
    """Copy every figure a run wrote into ``img_dir`` (plots are already there) and set its href."""
    used: set[str] = set()
    for section in report.sections:
        for item in section.items:
            for fig in item.figures:
                if fig.source.parent.resolve() == img_dir.resolve():
                    name = fig.source.name
                else:
                    name = f"{section.key}_{fig.source.name}"
                    if name in used:  # the same file name in two folders (eta_grid.png, step_*.png)
                        name = f"{section.key}_{fig.source.parent.name}_{fig.source.name}"
                    n = 1
                    while name in used:
                        n += 1
                        name = f"{section.key}_{n}_{fig.source.name}"
                    shutil.copyfile(fig.source, img_dir / name)
                used.add(name)
                fig.href = f"{IMG_DIR}/{name}"


def build_report(inputs: Inputs, out_dir: str | Path, title: str = TITLE) -> tuple[Report, Path, Path]:
    """Write ``out_dir/index.html``, ``out_dir/report.md`` and ``out_dir/img/``; return the report
    and the two paths. An output folder that cannot be written raises :class:`UserError`."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file, not a folder")
    img_dir = out_dir / IMG_DIR
    try:
        img_dir.mkdir(parents=True, exist_ok=True)
        report = Report(
            title, time.strftime("%Y-%m-%d %H:%M"), describe_inputs(inputs), collect(inputs, img_dir)
        )
        place_figures(report, img_dir)
        html_path, md_path = out_dir / HTML_NAME, out_dir / MARKDOWN_NAME
        save_text(render_html(report), html_path)  # atomically: a link there is replaced, not followed
        save_text(render_markdown(report), md_path)
    except OSError as err:
        raise UserError(f"cannot write the report to {out_dir}: {err.strerror or err}") from None
    return report, html_path, md_path
