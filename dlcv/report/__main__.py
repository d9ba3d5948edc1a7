"""Build the homework report: ``python -m dlcv.report`` (``make report``).

Reads what the project's commands wrote and writes OUT/index.html and OUT/report.md (the same
content, images in OUT/img/), viewable offline. Without --run it reads the checkout's default
output folders (checkpoints/pb1, figures/pb1, figures/pb2 [face UNet], figures/pb2_digits,
outputs/hw2_1, outputs/hw2_2, outputs/hw2_3, checkpoints/pb3, outputs/clip_zeroshot) and then
demo_out/ (what `make demo` writes). With --run it reads only the folders given, each a run
folder laid out like demo_out/ (pb1/, pb1_outputs/, figures/pb1, figures/pb2 [on the digit
model], figures/pb2_face, pb2_outputs/, pb3/, pb3_outputs/, clip_zeroshot/) or like the
checkout. The accuracies and CLIP scores are read from the graders' JSON files in the output
folders (grades.json, written by `evaluation/digit_classifier.py --json` and
`evaluation/grade_hw2_3.py --save_json`); the PB2 MSE is computed from the outputs and the
ground truth.

Anything missing is marked on the page with the command that produces it, and the one line
printed at the end says what is missing; the exit status is still 0. A --run folder that is
not a run folder is an error (exit status 2).
"""

from __future__ import annotations

import argparse

from dlcv.cli import run
from dlcv.report.document import TITLE
from dlcv.report.sources import DEFAULT_FACE_GT, DEFAULT_TI_INPUT, SLOTS, resolve_inputs, show

# torch and matplotlib are imported (by dlcv.report.build) only in main(), so --help answers at once.


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dlcv.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--run",
        action="append",
        metavar="DIR",
        help="a run folder to read (repeat for several; the first that has an input wins); "
        "default: the checkout's output folders, then demo_out/",
    )
    p.add_argument("--out", default="report", help="folder for index.html, report.md and img/ (%(default)s)")
    inputs = p.add_argument_group("single inputs (each overrides what --run or the defaults give)")
    for slot, (what, in_run, in_checkout) in SLOTS.items():
        inputs.add_argument(
            f"--{slot.replace('_', '-')}",
            metavar="PATH",
            help=f"{what}; default RUN/{in_run} or {in_checkout}",
        )
    inputs.add_argument(
        "--face-gt", metavar="DIR", help=f"PB2 ground-truth faces (default {DEFAULT_FACE_GT})"
    )
    inputs.add_argument(
        "--ti-input", metavar="JSON", help=f"PB3 input.json, for the prompts (default {DEFAULT_TI_INPUT})"
    )
    p.add_argument("--title", default=TITLE, help="the page's title")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    overrides = {slot: getattr(args, slot) for slot in SLOTS}
    inputs = resolve_inputs(args.run, overrides, args.face_gt, args.ti_input)
    from dlcv.report.build import build_report

    report, html_path, _ = build_report(inputs, args.out, args.title)
    print(f"report: {show(html_path)} (and report.md): {report.summary()}", flush=True)


if __name__ == "__main__":
    run(main)
