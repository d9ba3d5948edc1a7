"""The renderers of docs/ti_world.md's study blocks (merged into ``scripts/render_docs.py``'s): the
shipped world's word shares (``docs/results/ti_world_strokes.json``, ``bench/study_ti_world.py
--words``), its prompt probes and graders (``ti_world_probes.json``, ``--probe``) and the table of
worlds (``ti_world_study.json``, ``--record``). Each reads its results file only: nothing trains."""

from __future__ import annotations

from collections.abc import Callable

from dlcv_bench.render import load

DIGIT_NAMES = ("zeros", "ones", "twos", "threes", "fours", "fives", "sixes", "sevens", "eights", "nines")
STYLE_NAMES = {"mnistm": "MNIST-M-like", "svhn": "SVHN-like"}


def _made(data: dict) -> str:
    dirty = ", uncommitted changes" if data.get("dirty") else ""
    return (
        f"`{data['command']}` at commit {data['commit']}{dirty} ({data['date']}, "
        f"{data['cpus']} x {data['cpu']})"
    )


def _shares(counts: list[int], totals: list[int]) -> str:
    return " ".join(f"{c / t:.2f}" for c, t in zip(counts, totals))


def ti_world_strokes(data: dict | None = None) -> str:
    """The shape words' share of each digit's images, and of all three of the seven's together."""
    data = data or load("ti_world_strokes.json")
    axes, totals, first = data["axes"], data["per_digit_images"], data["per_digit_first_word"]
    shape_axes = [i for i, pair in enumerate(axes) if pair[0] in ("open", "top-heavy", "narrow-based")]
    lines = ["| words | share of each digit's images (0-9) that the first word describes |", "|---|---|"]
    for i in shape_axes:
        lines.append(f"| {axes[i][0]} / {axes[i][1]} | {_shares([row[i] for row in first], totals)} |")
    together = data["per_digit_all_seven_words"]
    words = ", ".join(axes[i][0] for i in shape_axes)
    lines.append(f"| all three ({words}) | {_shares(together, totals)} |")
    described = sorted((d for d in range(10) if together[d]), key=lambda d: -together[d] / totals[d])
    parts = [f"{together[d] / totals[d]:.0%} of {DIGIT_NAMES[d]}" for d in described]
    listed = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else "".join(parts)
    seed = data["settings"]["world_seed"]
    lines += [
        "",
        f'Together, "{words}" describe {listed}. Counted on the {data["images"]:,} images of the shipped '
        f"world's training set (world seed {seed}; {totals[0]:,} per digit): {_made(data)}.",
    ]
    return "\n".join(lines)


def ti_world_appearance(data: dict | None = None) -> str:
    """How far each style leans to each appearance word."""
    data = data or load("ti_world_strokes.json")
    axes, totals, first = data["axes"], data["per_style_images"], data["per_style_first_word"]
    styles = data["styles"]
    order = [styles.index("svhn"), styles.index("mnistm")]
    said = []
    for i, pair in enumerate(axes):
        if pair[0] in ("smooth", "pale"):
            shares = [1 - first[k][i] / totals[k] for k in order]  # the second word: grainy, vivid
            said.append((pair[1], shares))
    (w1, a), (w2, b) = said
    return (
        f"Each style only leans one way: {a[0]:.0%} of SVHN-like and {a[1]:.0%} of MNIST-M-like images are "
        f"{w1}, {b[0]:.0%} and {b[1]:.0%} {w2} ({totals[order[0]]:,} images of each style in the shipped "
        f"world's training set; {_made(data)})."
    )


def ti_world_probes(data: dict | None = None) -> str:
    """The shipped world's own words, drawn without any token and graded."""
    data = data or load("ti_world_probes.json")
    s, n = data["settings"], data["images_per_prompt"]
    held, five = s["held_out"], 5  # the held-out digit; the digit of the style prompt
    lines = [
        f"| prompt (no token) | {DIGIT_NAMES[held]} | {DIGIT_NAMES[five]} | each digit 0-9 | SVHN-like |",
        "|---|---|---|---|---|",
    ]
    for prompt, found in data["prompts"].items():
        d = found["digits"]
        lines.append(f'| "{prompt}" | {d[held]} | {d[five]} | {" ".join(map(str, d))} | {found["svhn"]} |')
    world = data["world"]
    lines += [
        "",
        f"Counts of {n} images per prompt; the shipped world ({world['training']['steps']:,} steps, world "
        f"seed {world['seed']}), guided DDIM {s['sampler_steps']} steps at guidance {s['guidance']:g}, seed "
        f"{s['seed']}, graded by the check's graders: {_made(data)}.",
    ]
    return "\n".join(lines)


def ti_world_graders(data: dict | None = None) -> str:
    """The check's graders' held-out accuracy, on images through the world's autoencoder."""
    data = data or load("ti_world_probes.json")
    g, s = data["graders"], data["settings"]
    return (
        f"The graders now read style {g['style']:.3f} and digits {g['digit']:.3f} right on 1,000 fresh such "
        f"images ({s['grader_steps']} steps on {s['grader_images']:,} images each, seed {s['seed']}; "
        f"{_made(data)})."
    )


def _pair(values: list[float]) -> str:
    return f"{values[0]:.2f} -> {values[1]:.2f}"


def ti_world_study(data: dict | None = None) -> str:
    """The table of worlds: each recorded study's checks (before -> after), keyed by its --set changes."""
    data = data or load("ti_world_study.json")
    lines = [
        "| world (`--set` changes) | steps | named-digit rate | object | style (fives) | world training s |",
        "|---|---|---|---|---|---|",
    ]
    notes = []
    for key, row in data["rows"].items():
        name = f"`{key}`" if key else "the shipped recipe"
        for i, c in enumerate(row["checks"]):
            lines.append(
                f"| {name if i == 0 else ''} | {c['step']:,} | {c['named']:.2f} | {_pair(c['object'])} "
                f"| {_pair(c['style'])} ({_pair(c['fives'])}) | {c['train_seconds']:,} |"
            )
        st = row["settings"]
        notes.append(
            f"{name}: {st['ti_steps']} token steps, {st['ti_vectors']} vectors, {st['n_images']} images per "
            f"rate, guidance {st['guidance']:g}, world seed {st['world_seed']}, seed {st['seed']}; "
            f"torch threads: {row['threads']}, where the reference network of `bench/reference_speed.py` ran "
            f"{row['reference_steps_per_s']:.2f} steps/s (the world's seconds include its checks and "
            f"depend on the machine and its load; the rates do not); {_made(row)}."
        )
    return "\n".join([*lines, "", *notes])


RENDERERS: dict[str, Callable[[], str]] = {
    "ti-world-appearance": ti_world_appearance,
    "ti-world-graders": ti_world_graders,
    "ti-world-probes": ti_world_probes,
    "ti-world-strokes": ti_world_strokes,
    "ti-world-study": ti_world_study,
}
