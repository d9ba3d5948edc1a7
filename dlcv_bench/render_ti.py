"""The Textual Inversion demo's figures (``make demo-ti``), rendered from ``docs/results/ti_demo.json``
(written by ``python bench/bench_ti_learns.py --out OUT --image-sets 0 1 2 --results
docs/results/ti_demo.json``): the control table and the "Where it stands" sentences of
docs/ti_world.md and the README's demo-ti figures. ``scripts/render_docs.py`` merges :data:`RENDERERS`.
"""

from __future__ import annotations

from collections.abc import Callable

from dlcv_bench.render import load

RESULTS = "ti_demo.json"
#: What "a clear margin" is, fixed before the sets were measured: 0.20 of a rate, 20 images in 100,
#: about three standard errors of a difference of two rates of 100 images each near 0.5.
CLEAR_MARGIN = 0.20
#: The rates of a row: (the key in the results file, what it counts, the concept it measures).
MEASURES = (
    ("object_held_out_rate", "sevens", "object"),
    ("style_svhn_rate", "SVHN-like", "style"),
    ("style_digit_rate", "fives", "style"),
)
CONTROLS = {
    "random": "the random vectors",
    "init_word": "the init word alone",
    "words": "the world's best words",
}


def _mr(values: list[float], signed: bool = False) -> str:
    """``0.93 (0.90 - 0.95)``: mean and range, two decimals (``+0.71 (+0.65 - +0.80)`` when ``signed``)."""
    f = "{:+.2f}" if signed else "{:.2f}"
    mean = f.format(sum(values) / len(values))
    return f"{mean} ({f.format(min(values))} - {f.format(max(values))})" if len(values) > 1 else mean


def _rates(data: dict, row: str, key: str) -> list[float]:
    return [run["rates"][row][key] for run in data["image_sets"].values()]


def _gains(data: dict, row: str, key: str) -> list[float]:
    """The learned token's rate minus ``row``'s, per image set."""
    return [a - b for a, b in zip(_rates(data, "after", key), _rates(data, row, key), strict=True)]


def _what(data: dict, row: str, concept: str) -> str:
    """How a row's images of ``concept`` are made, in a table cell."""
    prompt = data["rows"][row][concept]
    vectors = data["settings"]["ti_vectors"]
    token = "<new1>" if concept == "object" else "<new2>"
    init = prompt.replace(token, " ".join(["digit" if concept == "object" else "photo"] * vectors))
    return {
        "after": f'"{prompt}", {token} learned',
        "before": f'"{prompt}", {token} at its init word\'s embedding ("{init}")',
        "words": f'"{prompt}" (no token)',
        "random": f'"{prompt}", {vectors} random vectors of norm {_norm(data):.2f}',
        "init_word": f'"{prompt}" (no token)',
    }[row]


def _norm(data: dict) -> float:
    return next(iter(data["image_sets"].values()))["random_norm"]


def verdict(data: dict) -> str:
    """Whether the learned token beats the random vectors and the init word alone by
    :data:`CLEAR_MARGIN` on every image set, per concept, and what it adds over the world's words."""
    sentences = []
    for key, name, concept in MEASURES[:2]:
        weak = [
            f"{CONTROLS[row]} (by {min(_gains(data, row, key)):+.2f} on its worst set)"
            for row in ("random", "init_word")
            if min(_gains(data, row, key)) < CLEAR_MARGIN
        ]
        words = _gains(data, "words", key)
        if weak:
            head = (
                f"The {concept} token does **not** beat {' and '.join(weak)} by a clear margin "
                f"({CLEAR_MARGIN:.2f}) on every set"
            )
        else:
            head = (
                f"The {concept} token beats the random vectors and the init word alone by more than "
                f"{CLEAR_MARGIN:.2f} on every set ({name}: {_mr(_gains(data, 'random', key), True)} and "
                f"{_mr(_gains(data, 'init_word', key), True)})"
            )
        if min(words) >= CLEAR_MARGIN:
            over = f"over the world's best words it adds {_mr(words, True)}"
        elif round(sum(words), 6) <= 0:
            over = (
                f"over the world's best words it adds nothing: they do as well or better with no training "
                f"({_mr(words, True)})"
            )
        else:
            over = f"over the world's best words it adds less than that margin ({_mr(words, True)})"
        sentences.append(f"{head}; {over}.")
    return " ".join(sentences)


def ti_demo_controls() -> str:
    """docs/ti_world.md: every row's rates per image set, mean and range, and the token's gain over it."""
    data = load(RESULTS)
    sets = list(data["image_sets"])
    lines = [
        "| rate | row: the prompt | "
        + " | ".join(f"set {k}" for k in sets)
        + " | mean (range) | learned minus this row: mean (range) |",
        "|---|---|" + "---|" * len(sets) + "---|---|",
    ]
    for key, name, concept in MEASURES:
        for row in ("after", "before", "words", "random", "init_word"):
            values = _rates(data, row, key)
            gain = "" if row == "after" else _mr(_gains(data, row, key), True)
            label = f"{name} ({concept})" if row == "after" else ""
            lines.append(
                f"| {label} | {row.replace('_', ' ')}: {_what(data, row, concept)} | "
                + " | ".join(f"{v:.2f}" for v in values)
                + f" | {_mr(values)} | {gain} |"
            )
    s = data["settings"]
    drawn = "; ".join(
        f"set {k}: sevens drawn with seed {run['concept_images']['new1']['seed']} (styles "
        f"{' '.join(map(str, run['concept_images']['new1']['styles']))}), SVHN-like digits "
        f"{' '.join(map(str, run['concept_images']['new2']['digits']))}"
        for k, run in data["image_sets"].items()
    )
    lines += [
        "",
        f"Each set: {s['ti_steps']} token steps ({s['ti_vectors']} vectors), {s['n_images']} images per "
        f"row and concept, guided DDIM {s['sampler_steps']} steps, guidance {s['guidance']:g}, seed "
        f"{s['seed']}; graders {data['graders_heldout_acc']['digit']:.3f} (digits) and "
        f"{data['graders_heldout_acc']['style']:.3f} (styles) right on 1,000 fresh images as the world "
        f"draws them; the world's named-digit rate {data['named_digit_rate']:.2f}. The image sets "
        f"(`check.concept_images`, a rule fixed before any was measured: 5 sevens, and 5 SVHN-like "
        f"images of 5 digits that are neither seven nor five): {drawn}. The before, words and init-word "
        f"rows do not depend on the images (the same prompt and seed every set); the random vectors are "
        f"drawn per set. {verdict(data)} Measured on {data['date']} at commit {data['commit']} on "
        f"{data['cpus']} x {data['cpu']} ({data['threads']} threads, shared with other runs; reference "
        f"network {data['reference_steps_per_s']:.2f} steps/s): `{data['command']}`.",
    ]
    return "\n".join(lines)


def _demo_line(data: dict) -> str:
    """What ``make demo-ti`` (image set 0) prints last, as inline code."""
    r = data["image_sets"]["0"]["rates"]
    lines = [
        f"`TI {concept}: before = {r['before'][key]:.2f}, after = {r['after'][key]:.2f}`"
        for key, _, concept in MEASURES[:2]
    ]
    controls = "; ".join(
        f"{concept}: "
        + ", ".join(
            f"{row.replace('_', ' ')} = {r[row][key]:.2f}" for row in ("words", "random", "init_word")
        )
        for key, _, concept in MEASURES[:2]
    )
    return f"{lines[0]}, {lines[1]} and `TI controls: {controls}`"


def _over_sets(data: dict) -> str:
    """The learned tokens' rates over the image sets."""
    sevens, svhn, fives = (_mr(_rates(data, "after", key)) for key, _, _ in MEASURES)
    return (
        f"over image sets {', '.join(data['image_sets'])} (mean and range) the learned tokens give "
        f"sevens {sevens} and SVHN-like {svhn} (fives {fives})"
    )


def _minutes(data: dict) -> str:
    """How long the first set (what ``make demo-ti`` runs) took, and the machine's measured speed."""
    seconds = data["image_sets"]["0"]["seconds"]
    later = _mr([r["seconds"] / 60 for k, r in data["image_sets"].items() if k != "0"])
    return (
        f"The first set (graders included, what a fresh `make demo-ti` runs) took {seconds / 60:.1f} min "
        f"on {data['cpus']} x {data['cpu']} ({data['threads']} threads, shared with other runs, so an upper "
        f"bound; the later sets, reusing the graders, {later} min), "
        f"whose speed on the reference network of `bench/reference_speed.py`, measured just before, was "
        f"{data['reference_steps_per_s']:.2f} steps/s (the slowest machine of this kind recorded: "
        f"{data['slow_machine_steps_per_s']})"
    )


def ti_demo_where() -> str:
    """docs/ti_world.md's "Where it stands" sentences."""
    data = load(RESULTS)
    return (
        f"**Where it stands**: `make demo-ti` (image set 0) prints {_demo_line(data)}; {_over_sets(data)}. "
        f"{verdict(data)} The rows and the sets are in the next section (from `{data['command']}`, "
        f"{data['date']}, commit {data['commit']})."
    )


def ti_demo_readme() -> str:
    """The README's demo-ti figures: image set 0's lines, the sets' means, the controls, the minutes."""
    data = load(RESULTS)
    r = data["image_sets"]["0"]["rates"]
    fives = ", ".join(
        f"{row.replace('_', ' ')} {r[row]['style_digit_rate']:.2f}" for row in ("before", "after")
    )
    return (
        f"Measured ({data['date']}, commit {data['commit']}, `{data['command']}`): named-digit rate "
        f"**{data['named_digit_rate']:.2f}**; image set 0, what `make demo-ti` runs, prints "
        f"{_demo_line(data)} "
        f"(fives: {fives}); {_over_sets(data)}. {verdict(data)} {_minutes(data)}. The rows "
        f"per set and what the token adds over each control: [docs/ti_world.md](docs/ti_world.md)."
    )


def ti_world_training() -> str:
    """The README's sentence on the shipped world: how it was trained, what it measured."""
    data = load(RESULTS)
    w = data["world"]
    return (
        f"The shipped world was made by `{w['made_by']}`: {w['training']['steps']:,} steps of "
        f"{w['training']['batch_size']} images in {w['train_seconds']} s on {w['threads']} threads (its "
        f"`world.json`); its named-digit rate was {w['named_digit_rate']:.2f} then and "
        f"{data['named_digit_rate']:.2f} in the run of `docs/results/ti_demo.json` below."
    )


RENDERERS: dict[str, Callable[[], str]] = {
    "ti-demo-controls": ti_demo_controls,
    "ti-demo-where": ti_demo_where,
    "ti-demo-readme": ti_demo_readme,
    "ti-world-training": ti_world_training,
}
