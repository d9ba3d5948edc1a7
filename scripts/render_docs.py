"""Render the figures of the README and docs/ from the results files under docs/results/.

    python scripts/render_docs.py            # rewrite every rendered block (and the PNG figures)
    python scripts/render_docs.py --check    # exit 1 if a block differs from its rendering (make docs-check)

A rendered block in a Markdown file sits between two comments::

    <!-- results: NAME -->
    ... (written by this script from its results file; do not edit by hand) ...
    <!-- /results -->

``NAME`` is a renderer below; each reads one results file that a bench command wrote
(the command, commit, seeds, sample sizes and machine speed are in the file). Nothing here
trains or samples anything, so CI can run ``--check``. ``--check`` leaves the PNG figures
alone (their bytes depend on matplotlib's version); the default mode redraws them too.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

import dlcv_bench.render_ti
from dlcv_bench import render_constants, render_studies
from dlcv_bench.render import REPO, acc_ci, load, mean_range

#: Markdown files that may hold rendered blocks.
DOCUMENTS = ("README.md", "docs/*.md", "dlcv/assets/pb1/MODEL_CARD.md")
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)
DATASET_NAMES = {"mnistm": "MNIST-M", "svhn": "SVHN"}


def slow_minutes(steps: int, run: dict) -> float:
    ratio = run["reference_steps_per_s"] / run["steps_per_s"]
    return steps * ratio / run.get("slow_machine_steps_per_s", 3.1) / 60


# ---- Problem 1 ----------------------------------------------------------------------------------


def pb1_graders(data: dict) -> str:
    """The independent graders: held-out accuracy per dataset and per digit."""
    graders, split = data["graders"], data.get("split", {})
    lines = [
        "| grader | trained on | held-out test images | accuracy [95% CI] | per digit 0-9 |",
        "|---|---|---|---|---|",
    ]
    for name in ("mnistm", "svhn"):
        g = graders[name]
        trained = split.get(f"graders/{name}", {}).get("train_images")
        digits = " ".join(f"{v:.2f}" for v in g["per_digit"])
        lines.append(
            f"| {DATASET_NAMES[name]} (small CNN) | {trained or '?'} images of the grader half "
            f"| {g['total']} | {acc_ci(g)} | {digits} |"
        )
    return "\n".join(lines)


def pb1_graders_shipped() -> str:
    return pb1_graders(load("pb1_shipped.json"))


def pb1_shipped(data: dict | None = None) -> str:
    """The preset as shipped, per training seed: the work, the file, and the graded images."""
    data = data or load("pb1_shipped.json")
    lines = [
        "| training seed | steps | slow-machine min | file | sampling seed | images per dataset "
        "| MNIST-M [95% CI] | SVHN [95% CI] | 1,000 images in |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in data["runs"]:
        shipped = " (shipped)" if run is data["runs"][0] else ""
        for sampling_seed, g in run["gradings"].items():
            lines.append(
                f"| {run['seed']}{shipped} | {run['steps']:,} | {data['training_work_slow_min']:.1f} "
                f"| {run['file_bytes'] / 1e6:.1f} MB, sha256 {run['sha256'][:12]} | {sampling_seed} "
                f"| {g['mnistm']['total']} | {acc_ci(g['mnistm'])} | {acc_ci(g['svhn'])} "
                f"| {g['generation_s']:.0f} s |"
            )
    m = [g["mnistm"]["acc"] for r in data["runs"] for g in r["gradings"].values()]
    s = [g["svhn"]["acc"] for r in data["runs"] for g in r["gradings"].values()]
    lines += [
        "",
        f"Over the {len(data['runs'])} training seeds x {len(data['runs'][0]['gradings'])} sampling seeds: "
        f"MNIST-M {mean_range(m)}, SVHN {mean_range(s)} (mean and range). Measured on "
        f"{data['date']} at commit {data['commit']} on {data['cpus']} x {data['cpu']}, where the "
        f"reference network ran {data['reference_steps_per_s']:.2f} steps/s ({data['threads']} threads; "
        f"the slow machine: {data['slow_machine_steps_per_s']}) and the preset "
        f"{data['preset_steps_per_s']:.2f}: `{data['command']}`.",
    ]
    return "\n".join(lines)


def pb1_shipped_headline() -> str:
    """One sentence for the README: the shipped model's accuracy."""
    data = load("pb1_shipped.json")
    first = data["runs"][0]
    g = first["gradings"]["0"]
    m = [g["mnistm"]["acc"] for r in data["runs"] for g in r["gradings"].values()]
    s = [g["svhn"]["acc"] for r in data["runs"] for g in r["gradings"].values()]
    return (
        f"The shipped model (seed {first['seed']}, {first['steps']:,} steps, "
        f"{data['training_work_slow_min']:.1f} slow-machine minutes of training, "
        f"{first['file_bytes'] / 1e6:.1f} MB): `bash hw2_1.sh OUT` reads MNIST-M {acc_ci(g['mnistm'])} and "
        f"SVHN {acc_ci(g['svhn'])} ({g['svhn']['total']} images each, 95% intervals) on graders that never "
        f"saw its training images; over {len(data['runs'])} training seeds x "
        f"{len(first['gradings'])} sampling seeds of the preset: MNIST-M {mean_range(m)}, SVHN "
        f"{mean_range(s)}."
    )


def pb1_card() -> str:
    """The shipped model's card: what it is, where it came from, how well it reads."""
    data = load("pb1_shipped.json")
    first, split = data["runs"][0], data["split"]
    lines = [
        "| | |",
        "|---|---|",
        f"| file | `dlcv/assets/pb1/model.safetensors`, {first['file_bytes']:,} bytes |",
        f"| SHA-256 | `{first['sha256']}` |",
        "| network | the `demo` preset: residual MLP (4 blocks, width 512) on 256 principal components, "
        "20 classes + the null class of classifier-free guidance |",
        "| storage | EMA weights; matrices as int8 with one fp16 scale per row, the PCA basis and the rest "
        "as fp16 (`dlcv/io/compact.py`) |",
        f"| training data | the generator half of digits_mini's train split (split seed {split['seed']}): "
        f"{split['generator/mnistm']['train_images']:,} MNIST-M and "
        f"{split['generator/svhn']['train_images']:,} SVHN images (real, 28x28) |",
        f"| training | `PB1/train.py --config demo --seed {first['seed']}` ({first['steps']:,} steps of 256, "
        f"{data['training_work_slow_min']:.1f} minutes of the slow 2-core machine's work) |",
        f"| made by | `{data['command']}` at commit {data['commit']} ({data['date']}) |",
        f"| sampling (hw2_1.sh, from the model's config) | {first['sampling']} |",
    ]
    for seed, g in first["gradings"].items():
        how = "`bash hw2_1.sh OUT`" if seed == "0" else f"`PB1/inference.py --seed {seed}`"
        lines.append(
            f"| accuracy, {how} | MNIST-M {acc_ci(g['mnistm'])}, SVHN {acc_ci(g['svhn'])} "
            f"({g['svhn']['total']} images each; 1,000 images in {g['generation_s']:.0f} s here) |"
        )
    return "\n".join(lines)


def _round4_rows(data: dict) -> list[tuple[str, dict]]:
    return sorted(data["runs"].items(), key=lambda item: item[0] != "preset")


def pb1_round4() -> str:
    """Round 4: each option at equal work over the recorded seeds, the last graded point."""
    data = load("pb1_round4.json")
    lines = [
        "| option | change against the preset | steps | slow-machine min | seeds | images per dataset "
        "| MNIST-M mean (range) | SVHN mean (range) | SVHN per seed [95% CI] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, seeds in _round4_rows(data):
        finals = [run["points"][-1] for run in seeds.values()]
        first = next(iter(seeds.values()))
        change = " ".join(first["overrides"]) or "(none: the preset as shipped)"
        per_seed = "; ".join(
            f"{p['svhn']:.3f} [{p['svhn_ci'][0]:.3f}, {p['svhn_ci'][1]:.3f}]" for p in finals
        )
        lines.append(
            f"| {name} | {change} | {finals[0]['step']:,} | {slow_minutes(finals[0]['step'], first):.1f} "
            f"| {', '.join(seeds)} | {finals[0]['svhn_total']} | {mean_range([p['mnistm'] for p in finals])} "
            f"| {mean_range([p['svhn'] for p in finals])} | {per_seed} |"
        )
    first = next(iter(next(iter(data["runs"].values())).values()))
    lines += [
        "",
        f"Each seed trains and samples with that seed. Speeds: the reference network "
        f"{first['reference_steps_per_s']:.2f} steps/s on {first['cpus']} x {first['cpu']} "
        f"({first.get('speed_threads', 2)} threads), the preset's network "
        f"{data['runs']['preset'][next(iter(data['runs']['preset']))]['steps_per_s']:.2f}; commit "
        f"{first['commit']}; `{first['command']}` (one run per seed).",
    ]
    return "\n".join(lines)


def pb1_round4_curve() -> str:
    """Mean SVHN and MNIST-M accuracy along the run (slow-machine minutes), per option."""
    data = load("pb1_round4.json")
    lines = [
        "| option | " + " | ".join(["slow-machine min: MNIST-M / SVHN (mean over seeds)"]) + " |",
        "|---|---|",
    ]
    for name, seeds in _round4_rows(data):
        first = next(iter(seeds.values()))
        columns = []
        for i, point in enumerate(first["points"]):
            if i and point["step"] == first["points"][i - 1]["step"]:
                continue  # the run's end, kept twice (its last checkpoint and its final model)
            m = [run["points"][i]["mnistm"] for run in seeds.values()]
            s = [run["points"][i]["svhn"] for run in seeds.values()]
            columns.append(
                f"{slow_minutes(point['step'], first):.1f}: {sum(m) / len(m):.3f} / {sum(s) / len(s):.3f}"
            )
        lines.append(f"| {name} | {'; '.join(columns)} |")
    return "\n".join(lines)


def pooled(runs: list[dict], name: str) -> dict:
    """All runs' images of one dataset together: ``{"acc", "ci"}`` (95% Wilson interval)."""
    from dlcv.digits.grading import wilson_interval

    correct, total = sum(r[f"{name}_correct"] for r in runs), sum(r[f"{name}_total"] for r in runs)
    return {"acc": correct / total, "ci": wilson_interval(correct, total)}


def pb1_sweep() -> str:
    """Sampler settings on trained models: every model with every sampling seed, per setting."""
    data = load("pb1_sweep.json")
    lines = [
        "| sampler | steps | guidance | eta | guided at timesteps | runs x images | MNIST-M mean (range) "
        "| SVHN mean (range) | MNIST-M pooled [95% CI] | SVHN pooled [95% CI] |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in data["results"]:
        g, runs = r["guidance"], r["runs"]
        shown = "/".join(f"{v:g}" for v in g) if isinstance(g, list) else f"{g:g}"
        interval = "-".join(f"{v:g}" for v in r["guidance_interval"]) if r.get("guidance_interval") else "all"
        lines.append(
            f"| {r['sampler']} | {r['steps']} | {shown} | {r['eta']:g} | {interval} "
            f"| {len(runs)} x {runs[0]['svhn_total']} | {mean_range([x['mnistm'] for x in runs])} "
            f"| {mean_range([x['svhn'] for x in runs])} | {acc_ci(pooled(runs, 'mnistm'))} "
            f"| {acc_ci(pooled(runs, 'svhn'))} |"
        )
    models = ", ".join(f"`{m}`" for m in data["models"])
    seeds = ", ".join(str(seed) for seed in data["sampling_seeds"])
    lines += [
        "",
        f"Models: {models}; sampling seeds {seeds} for each; commit {data['commit']}; `{data['command']}`.",
    ]
    return "\n".join(lines)


def pb1_demo() -> str:
    """The README's `make demo` sentence: its minutes, accuracies and the machine's speed."""
    data = load("pb1_demo.json")
    m, s = data["accuracy"]["mnistm"], data["accuracy"]["svhn"]
    ref, slow = data["reference_steps_per_s"], data["slow_machine_steps_per_s"]
    total = data["minutes"]["total"]
    return (
        f"Measured ({data['date']}, commit {data['commit']}, `{data['command']}`): {total:.1f} min "
        f"without the install on {data['cpus']} x {data['cpu']}, whose speed was {ref:.2f} steps/s on the "
        f"reference network of `bench/reference_speed.py` ({ref / slow:.1f}x the slowest machine of this "
        f"kind seen, {slow}); scaled by the speeds, about {total * ref / slow:.0f} minutes there. MNIST-M "
        f"acc = {acc_ci(m)} and SVHN acc = {acc_ci(s)} ({m['total']} images each, 95% intervals; the "
        f"synthetic set, graded by the demo's own graders, one run: every step is seeded, so a second "
        f"run on the same machine gives the same numbers)."
    )


RENDERERS: dict[str, Callable[[], str]] = {
    "pb1-card": pb1_card,
    "pb1-demo": pb1_demo,
    "pb1-graders": pb1_graders_shipped,
    "pb1-shipped": pb1_shipped,
    "pb1-shipped-headline": pb1_shipped_headline,
    "pb1-round4": pb1_round4,
    "pb1-round4-curve": pb1_round4_curve,
    "pb1-sweep": pb1_sweep,
}
RENDERERS.update(render_studies.RENDERERS)  # docs/ti_world.md's study blocks
RENDERERS.update(dlcv_bench.render_ti.RENDERERS)  # make demo-ti's figures (ti_demo.json)
RENDERERS.update(render_constants.RENDERERS)  # the SD speed and memory, the reference speeds


def pb1_round4_figure(path: Path) -> Path:
    """docs/pb1_round4.png: accuracy against training work, mean over seeds, every option."""
    from dlcv_bench.pb1 import plot_curves

    data = load("pb1_round4.json")
    curves = {}
    for name, seeds in _round4_rows(data):
        first = next(iter(seeds.values()))
        points = []
        for i, point in enumerate(first["points"]):
            if i and point["step"] == first["points"][i - 1]["step"]:
                continue  # the run's end, kept twice (its last checkpoint and its final model)
            m = [run["points"][i]["mnistm"] for run in seeds.values()]
            s = [run["points"][i]["svhn"] for run in seeds.values()]
            points.append((slow_minutes(point["step"], first), sum(m) / len(m), sum(s) / len(s)))
        curves[name] = points
    return plot_curves(curves, path, f"PB1 round 4 on digits_mini (mean of {len(first and seeds)} seeds)")


FIGURES: dict[str, Callable[[Path], Path]] = {"docs/pb1_round4.png": pb1_round4_figure}


def documents() -> list[Path]:
    found: list[Path] = []
    for pattern in DOCUMENTS:
        found += sorted(REPO.glob(pattern))
    return found


def render(text: str, path: Path) -> str:
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in RENDERERS:
            raise SystemExit(
                f"error: {path.relative_to(REPO)}: unknown rendered block {name!r} "
                f"(known: {', '.join(RENDERERS)})"
            )
        return f"{match[1]}{RENDERERS[name]()}\n{match[4]}"

    return BLOCK.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = p.parse_args(argv)
    stale = []
    for path in documents():
        text = path.read_text()
        if not BLOCK.search(text):
            continue
        new = render(text, path)
        if new != text:
            stale.append(path.relative_to(REPO))
            if not args.check:
                path.write_text(new)
    if args.check:
        for path in stale:
            print(f"{path}: a rendered block differs from docs/results/ (run: python scripts/render_docs.py)")
        return 1 if stale else 0
    for target, draw in FIGURES.items():
        print(f"drew {draw(REPO / target).relative_to(REPO)}")
    for path in stale:
        print(f"rendered {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
