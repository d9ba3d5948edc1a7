"""dlcv_bench/render_ti.py: the demo-ti figures rendered from a results file (a made-up one here)."""

from __future__ import annotations

import pytest

from dlcv_bench import render_ti

ROWS = ("before", "after", "words", "random", "init_word")


def results(after_object: list[float], random_object: float) -> dict:
    """A results file of ``bench_ti_learns.py --results`` with one set per ``after_object`` rate."""
    sets = {}
    for k, after in enumerate(after_object):
        rates = {
            row: {"object_held_out_rate": 0.2, "style_svhn_rate": 0.2, "style_digit_rate": 0.8}
            for row in ROWS
        }
        rates["after"] = {"object_held_out_rate": after, "style_svhn_rate": 1.0, "style_digit_rate": 0.7}
        rates["words"] = {"object_held_out_rate": 0.9, "style_svhn_rate": 0.5, "style_digit_rate": 0.9}
        rates["random"] = {
            "object_held_out_rate": random_object,
            "style_svhn_rate": 0.3,
            "style_digit_rate": 0.6,
        }
        images = {
            "new1": {"seed": 2 + 100 * k, "styles": [0, 1]},
            "new2": {"digits": [1, 2], "seed": 2 + 100 * k},
        }
        sets[str(k)] = {"rates": rates, "seconds": 120.0, "concept_images": images, "random_norm": 4.0}
    prompts = {row: {"object": f"a photo of <new1> {row}", "style": f"style of <new2> {row}"} for row in ROWS}
    return {
        "command": "python bench/bench_ti_learns.py --image-sets 0 1 2",
        "commit": "abc1234",
        "date": "2026-12-07",
        "cpu": "a CPU",
        "cpus": 2,
        "threads": 2,
        "reference_steps_per_s": 6.2,
        "slow_machine_steps_per_s": 3.1,
        "named_digit_rate": 0.967,
        "graders_heldout_acc": {"digit": 0.97, "style": 0.99},
        "settings": {"ti_steps": 800, "ti_vectors": 2, "n_images": 100, "sampler_steps": 25, "guidance": 5.0}
        | {"seed": 0},
        "rows": prompts,
        "world": {
            "made_by": "x",
            "training": {"steps": 3000, "batch_size": 64},
            "train_seconds": 519,
            "threads": 2,
            "named_digit_rate": 0.967,
        },
        "image_sets": sets,
    }


def test_the_table_has_every_row_per_set_and_the_tokens_gain_over_it(monkeypatch):
    monkeypatch.setattr(render_ti, "load", lambda name: results([0.9, 0.8, 1.0], 0.3))
    table = render_ti.ti_demo_controls().splitlines()
    assert table[0].startswith("| rate | row: the prompt | set 0 | set 1 | set 2 | mean (range) |")
    rows = [line for line in table if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 3 * len(ROWS)
    assert (
        rows[0].startswith("| sevens (object) | after:")
        and "| 0.90 | 0.80 | 1.00 | 0.90 (0.80 - 1.00) |" in rows[0]
    )
    random = next(r for r in rows[:5] if "| random:" in r)
    assert random.endswith("| 0.30 | 0.30 | 0.30 | 0.30 (0.30 - 0.30) | +0.60 (+0.50 - +0.70) |")
    assert "2 random vectors of norm 4.00" in random
    assert (
        "set 1: sevens drawn with seed 102" in table[-1] and "`python bench/bench_ti_learns.py" in table[-1]
    )


@pytest.mark.parametrize(
    ("after", "random", "beats"),
    [([0.9, 0.8, 1.0], 0.3, True), ([0.9, 0.45, 1.0], 0.3, False)],
)
def test_the_verdict_holds_the_token_to_a_clear_margin_on_every_set(after, random, beats):
    said = render_ti.verdict(results(after, random))
    first = said.split(". ")[0]
    assert ("does **not** beat" not in first) == beats, said
    if not beats:
        assert "the random vectors (by +0.15 on its worst set)" in first
    assert "over the world's best words it adds nothing" in said  # object: 0.9 - 0.9 on average
    assert "over the world's best words it adds +0.50" in said  # style: 1.0 - 0.5 on every set


def test_the_sentences_carry_the_demos_lines_and_the_runs_speed(monkeypatch):
    monkeypatch.setattr(render_ti, "load", lambda name: results([0.9, 0.8, 1.0], 0.3))
    readme = render_ti.ti_demo_readme()
    assert "`TI object: before = 0.20, after = 0.90`, `TI style: before = 0.20, after = 1.00`" in readme
    assert (
        "`TI controls: object: words = 0.90, random = 0.30, init word = 0.20; style: words = 0.50" in readme
    )
    assert "runs) took 2.0 min on 2 x a CPU" in readme and "was 6.20 steps/s" in readme
    assert "the later sets, reusing the graders, 2.00 (2.00 - 2.00) min" in readme
    assert render_ti.ti_demo_where().startswith("**Where it stands**: `make demo-ti` (image set 0) prints")
    assert "3,000 steps of 64 images in 519 s on 2 threads" in render_ti.ti_world_training()
