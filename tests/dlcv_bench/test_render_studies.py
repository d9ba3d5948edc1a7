"""dlcv_bench.render_studies: docs/ti_world.md's blocks from their results files."""

from __future__ import annotations

from dlcv_bench import render_studies

MADE = {"command": "python bench/study_ti_world.py", "commit": "abc1234", "date": "2026-12-07"}
MADE |= {"cpus": 2, "cpu": "a CPU"}
AXES = [["smooth", "grainy"], ["pale", "vivid"], ["open", "looped"], ["top-heavy", "bottom-heavy"]]
AXES += [["narrow-based", "broad-based"]]


def _strokes() -> dict:
    first = [[10, 10, 0, 0, 0] for _ in range(10)]
    first[7] = [10, 10, 20, 19, 18]
    first[1] = [10, 10, 20, 8, 9]
    together = [0] * 10
    together[7], together[1], together[4] = 18, 5, 1
    return {
        "axes": AXES,
        "images": 200,
        "per_digit_images": [20] * 10,
        "per_digit_first_word": first,
        "per_digit_all_seven_words": together,
        "per_style_images": [100, 100],
        "per_style_first_word": [[20, 25, 0, 0, 0], [80, 70, 0, 0, 0]],
        "styles": ["mnistm", "svhn"],
        "settings": {"world_seed": 0},
        **MADE,
    }


def test_strokes_give_each_words_share_per_digit_and_the_digits_all_three_describe():
    text = render_studies.ti_world_strokes(_strokes())
    assert "| open / looped | 0.00 1.00 0.00 0.00 0.00 0.00 0.00 1.00 0.00 0.00 |" in text
    assert "| top-heavy / bottom-heavy | 0.00 0.40 0.00 0.00 0.00 0.00 0.00 0.95 0.00 0.00 |" in text
    assert "describe 90% of sevens, 25% of ones and 5% of fours" in text  # most described first
    assert "200 images" in text and "commit abc1234" in text


def test_appearance_says_each_styles_share_of_the_second_words():
    text = render_studies.ti_world_appearance(_strokes())
    assert "20% of SVHN-like and 80% of MNIST-M-like images are grainy, 30% and 75% vivid" in text


def test_probes_and_graders_come_from_the_probe_file():
    digits = [0, 1, 0, 0, 0, 0, 0, 49, 0, 0]
    data = {
        "prompts": {"a photo of a top-heavy digit": {"digits": digits, "svhn": 20}},
        "graders": {"digit": 0.968, "style": 0.9671},
        "world": {"seed": 0, "training": {"steps": 3000}},
        "images_per_prompt": 50,
        "settings": {"held_out": 7, "sampler_steps": 25, "guidance": 5.0, "seed": 0}
        | {"grader_steps": 600, "grader_images": 4000},
        **MADE,
        "dirty": True,
    }
    text = render_studies.ti_world_probes(data)
    assert '| "a photo of a top-heavy digit" | 49 | 0 | 0 1 0 0 0 0 0 49 0 0 | 20 |' in text
    assert (
        "| sevens | fives |" in text
        and "50 images per prompt" in text
        and "guidance 5" in text
        and "uncommitted changes" in text
    )
    graders = render_studies.ti_world_graders(data)
    assert "style 0.967 and digits 0.968" in graders and "600 steps on 4,000 images" in graders


def test_the_study_table_has_a_line_per_check_of_each_recorded_world():
    check = {"step": 2250, "named": 0.9, "object": [0.2, 0.9], "style": [0.3, 1.0], "fives": [0.8, 0.7]}
    check |= {"train_seconds": 1200}
    settings = {
        "ti_steps": 800,
        "ti_vectors": 2,
        "n_images": 100,
        "guidance": 5.0,
        "world_seed": 0,
        "seed": 0,
    }
    row = {"checks": [check, {**check, "step": 3000}], "settings": settings, "threads": 1}
    row |= {"reference_steps_per_s": 3.5, **MADE}
    text = render_studies.ti_world_study({"rows": {"": row, "world_seed=1": row}})
    lines = text.splitlines()
    assert (
        lines[2]
        == "| the shipped recipe | 2,250 | 0.90 | 0.20 -> 0.90 | 0.30 -> 1.00 (0.80 -> 0.70) | 1,200 |"
    )
    assert lines[3].startswith("|  | 3,000 |") and lines[4].startswith("| `world_seed=1` | 2,250 |")
    assert "3.50 steps/s" in text and text.count("commit abc1234") == 2
