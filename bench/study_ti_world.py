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

``--record docs/results/ti_world_study.json`` also files the study's checks there, keyed by the
``--set`` changes (other studies' rows kept), with the command, commit, machine and the speed of
the fixed reference network measured in the same run: the table of worlds in docs/ti_world.md is
rendered from that file (``scripts/render_docs.py``).

Two measures of the shipped world need no training and file their own results files:

    python bench/study_ti_world.py --out OUT --probe docs/results/ti_world_probes.json
    python bench/study_ti_world.py --words docs/results/ti_world_strokes.json

``--probe``: images of the prompts of :data:`PROBES` (the world's own words for the held-out digit,
no token; the style prompt's words) drawn by the shipped world as the check draws them, graded by
the check's graders (trained in OUT/graders), counted per digit and style. ``--words``: the share of
each digit's (and style's) images in the shipped world's training set that each descriptive word
describes (:func:`dlcv_bench.digit_world.shape`, :func:`~dlcv_bench.digit_world.appearance`).
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
from dlcv.digits.grading import predict
from dlcv.io.checkpoint import load_weights
from dlcv.stable_diffusion import generation as sampling
from dlcv.stable_diffusion.loading import load_stable_diffusion
from dlcv_bench import digit_world as world
from dlcv_bench.digit_world import check
from dlcv_bench.pb1 import provenance, reference_speed, write_json


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


#: The shape words the held-out seven mostly has (one from each of SHAPE_WORDS' pairs).
SEVEN_WORDS = tuple(pair[0] for pair in world.SHAPE_WORDS)
#: Prompts of --probe, in the world's caption grammar: its words for the seven, then the style prompt's.
PROBES: tuple[str, ...] = (
    world.caption(None, words=SEVEN_WORDS),
    *(world.caption(None, words=[w]) for w in SEVEN_WORDS),
    world.caption(None),
    world.caption(5, "the {}"),
    world.caption(5, "the {} in a photo"),
    world.caption(5, "the {} in the style of photo"),
)


def probe(out: Path, s: check.Settings, n: int) -> dict:
    """``n`` images of each prompt of :data:`PROBES` from the world of OUT/world (the shipped one
    unless OUT holds another), guided DDIM as the check samples, graded by the check's graders:
    ``{"prompts": {prompt: {"digits": counts 0-9, "svhn": count}}, "graders": held-out accuracies}``."""
    world_dir = check.world_folder(out, s)
    digit_clf, style_clf = check.build_graders(out, world_dir, s)
    sd = load_stable_diffusion(world_dir)
    options = sampling.SamplingOptions(s.sampler_steps, s.guidance, solver="ddim", resolution=world.SIZE)
    prompts = {}
    for prompt in PROBES:
        with torch.no_grad():
            images = sampling.generate(sd, prompt, n, options, s.seed, n)
        digits = torch.bincount(predict(digit_clf, images), minlength=10).tolist()
        prompts[prompt] = {"digits": digits, "svhn": int((predict(style_clf, images) == check.SVHN).sum())}
        print(f"{prompt!r}: digits {digits}, SVHN-like {prompts[prompt]['svhn']}", flush=True)
    graders = {
        name: (load_weights(out / "graders" / f"{name}_classifier.safetensors")[1] or {}).get("heldout_acc")
        for name in ("digit", "style")
    }
    world_info = json.loads((world_dir / "done.json").read_text())
    return {"prompts": prompts, "graders": graders, "world": world_info, "images_per_prompt": n}


def words(s: check.Settings) -> dict:
    """How often each descriptive word describes the images of the world of ``s``'s training set
    (:func:`world.world_data`, as :func:`world.train_world` draws it): per digit and per style, the
    count of images that each axis's first word (open, top-heavy, narrow-based; smooth, pale) and
    all of :data:`SEVEN_WORDS` together describe."""
    data = world.world_data(s.world_images, s.held_out, s.world_seed, s.world_generic)
    first = data.words == 0  # (N, 5): the image has the axis's first word
    shapes = first[:, len(world.APPEARANCE_WORDS) :]

    def counts(groups: torch.Tensor, n_groups: int, columns: torch.Tensor) -> list[list[int]]:
        return [columns[groups == k].sum(0).tolist() for k in range(n_groups)]

    return {
        "axes": [list(pair) for pair in world.DESCRIPTIONS],
        "images": len(data.digits),
        "per_digit_images": torch.bincount(data.digits, minlength=10).tolist(),
        "per_digit_first_word": counts(data.digits, 10, first.long()),
        "per_digit_all_seven_words": [int(shapes[data.digits == d].all(1).sum()) for d in range(10)],
        "per_style_images": torch.bincount(data.styles, minlength=2).tolist(),
        "per_style_first_word": counts(data.styles, 2, first.long()),
        "styles": list(world.STYLES),
    }


def record(path: Path, pairs: list[str], s: check.Settings, checks: list[dict], speed: float) -> str:
    """File ``checks`` in the results file ``path`` under the key of the ``--set`` ``pairs`` ("" for
    the shipped recipe), keeping the other keys' rows; returns the key."""
    key = " ".join(sorted(pairs))
    data = json.loads(path.read_text()) if path.is_file() else {"rows": {}}
    data["rows"][key] = {
        "set": sorted(pairs),
        "settings": dataclasses.asdict(s),
        "checks": checks,
        **provenance(),
        "threads": torch.get_num_threads(),
        "reference_steps_per_s": round(speed, 2),
    }
    write_json(path, data)
    return key


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--out", help="the study's folder (resumed when it holds one); --probe's world and graders"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a field of dlcv_bench.digit_world.check.Settings, e.g. world_generic=0.4 (repeatable)",
    )
    p.add_argument("--check-from", type=int, default=0, help="first step checked (default: only the end)")
    p.add_argument("--check-every", type=int, default=500, help="steps between checks (default: 500)")
    p.add_argument(
        "--record",
        metavar="JSON",
        help="also file the checks in this results file (docs/results/ti_world_study.json), keyed by --set",
    )
    p.add_argument(
        "--probe",
        metavar="JSON",
        help="instead of a study: the world's own words drawn and graded (docs/results/ti_world_probes.json)",
    )
    p.add_argument("--probe-images", type=int, default=50, help="--probe's images per prompt (default: 50)")
    p.add_argument(
        "--words",
        metavar="JSON",
        help="instead of a study: each descriptive word's share of the training set "
        "(docs/results/ti_world_strokes.json)",
    )
    args = p.parse_args(argv)
    if args.check_every < 1 or args.check_from < 0:
        raise UserError(
            f"--check-every must be >= 1 and --check-from >= 0, got {args.check_every} and {args.check_from}"
        )
    if args.probe_images < 1:
        raise UserError(f"--probe-images must be >= 1, got {args.probe_images}")
    if args.out is None and not args.words:
        raise UserError("--out is required (the study's folder; --probe's world and graders)")
    s = settings(args.set)
    if args.words or args.probe:
        torch.set_num_threads(min(2, torch.get_num_threads()))
        if args.words:
            write_json(Path(args.words), {**words(s), "settings": dataclasses.asdict(s), **provenance()})
            print(f"recorded in {args.words}", flush=True)
        if args.probe:
            found = probe(Path(args.out), s, args.probe_images)
            write_json(Path(args.probe), {**found, "settings": dataclasses.asdict(s), **provenance()})
            print(f"recorded in {args.probe}", flush=True)
        return
    check_from = args.check_from or s.world_steps
    torch.set_num_threads(min(2, torch.get_num_threads()))
    speed = reference_speed(torch.get_num_threads()) if args.record else 0.0  # before the study's load
    checks = study(Path(args.out), s, check_from, args.check_every)
    if args.record:
        key = record(Path(args.record), args.set, s, checks, speed)
        print(f"recorded in {args.record} (row {key or 'the shipped recipe'!r})", flush=True)


if __name__ == "__main__":
    run(main)
