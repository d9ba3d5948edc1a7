"""The Textual Inversion world study (docs/ti_world.md): train a world of one recipe and run the
whole check of ``bench_ti_learns.py`` (:mod:`dlcv_bench.digit_world.check`) at several points of
its training.

    python bench/study_ti_world.py --out OUT [--set world_generic=0.4 --set world_channels=32,64,128]
                                   [--check-from 3000] [--check-every 750]

The recipe is :class:`dlcv_bench.digit_world.check.Settings` (the shipped world's and the
demo's) with the ``--set`` fields changed. Every ``--check-every`` steps from ``--check-from`` on
(and at the end), the world so far (its EMA weights) is written to OUT/check_STEP/world and
checked there: named-digit rate, both tokens learned by ``PB3/train.py``'s job, before/after
rates, grid. The graders are trained once (OUT/graders) and copied into each check. One JSON line
per check goes to OUT/checks.jsonl: ``{"step", "named", "object": [before, after], "style":
[before, after], "fives": [before, after]}``. An interrupted study resumes (the world's run in
OUT/run, finished checks kept).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

import torch

from dlcv.cli import UserError, run
from dlcv_bench import digit_world as world
from dlcv_bench.digit_world import check


def settings(pairs: list[str]) -> check.Settings:
    """``check.Settings`` with ``key=value`` pairs applied (tuples as comma-separated numbers)."""
    fields = {f.name: f for f in dataclasses.fields(check.Settings)}
    changes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise UserError(f"--set {pair!r}: expected KEY=VALUE with KEY one of {', '.join(fields)}")
        default = getattr(check.Settings(), key)
        try:
            if isinstance(default, tuple):
                changes[key] = tuple(type(default[0])(v) for v in value.split(","))
            else:
                changes[key] = type(default)(value)
        except ValueError:
            raise UserError(f"--set {pair!r}: {value!r} does not read as {type(default).__name__}") from None
    return dataclasses.replace(check.Settings(), **changes)


def study(out: Path, s: check.Settings, check_from: int, check_every: int) -> list[dict]:
    """Train the world of ``s`` in ``out`` and check it at the planned steps; returns the checks."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "checks.jsonl"
    done = _read_checks(log)
    if any(line["step"] == s.world_steps for line in done):
        print(f"{out}: finished ({len(done)} checks in {log})", flush=True)
        return done
    arch, opts = check.world_recipe(s)
    sd = world.build_world(s.world_seed, world.world_config(**arch))
    began = time.perf_counter()

    def on_sample(unet: torch.nn.Module, step: int) -> None:
        if step == 0 or (step < check_from and step < s.world_steps):
            return
        folder = out / f"check_{step:06d}"
        if (folder / "results.json").is_file():
            return
        info = check.world_info(s) | {"step": step}
        check.write_world(dataclasses.replace(sd, unet=unet), folder / "world", info)
        if (out / "graders").is_dir():
            shutil.copytree(out / "graders", folder / "graders", dirs_exist_ok=True)
        with torch.enable_grad():
            r = check.check(folder, s)
        if not (out / "graders").is_dir():
            shutil.copytree(folder / "graders", out / "graders")
        rates = r["rates"]
        line = {
            "step": step,
            "train_seconds": round(time.perf_counter() - began),
            "named": round(r["world_named_digit_rate"]["rate"], 3),
            **{
                name: [round(rates[w][key], 3) for w in ("before", "after")]
                for name, key in (
                    ("object", "object_held_out_rate"),
                    ("style", "style_svhn_rate"),
                    ("fives", "style_digit_rate"),
                )
            },
        }
        with log.open("a") as f:
            f.write(json.dumps(line) + "\n")
        print("check", json.dumps(line), flush=True)

    world.train_world(sd, out / "run", opts, on_sample=on_sample, sample_every=check_every)
    return _read_checks(log)


def _read_checks(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the study's folder (resumed when it holds one)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a field of dlcv_bench.digit_world.check.Settings, e.g. world_generic=0.4 (repeatable)",
    )
    p.add_argument("--check-from", type=int, default=0, help="first step checked (default: only the end)")
    p.add_argument("--check-every", type=int, default=500, help="steps between checks (default: 500)")
    args = p.parse_args(argv)
    if args.check_every < 1 or args.check_from < 0:
        raise UserError(
            f"--check-every must be >= 1 and --check-from >= 0, got {args.check_every} and {args.check_from}"
        )
    s = settings(args.set)
    check_from = args.check_from or s.world_steps
    torch.set_num_threads(min(2, torch.get_num_threads()))
    study(Path(args.out), s, check_from, args.check_every)


if __name__ == "__main__":
    run(main)
