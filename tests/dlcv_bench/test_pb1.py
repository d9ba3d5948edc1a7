"""dlcv_bench/pb1.py: the generator/grader split and the gradings every PB1 bench reports."""

from __future__ import annotations

import csv
import json

from dlcv.data.digits import load_digit_split
from dlcv_bench import pb1 as common


def rows(path):
    with open(path, newline="") as f:
        return [(r["image_name"], r["label"]) for r in csv.DictReader(f)]


def test_the_split_gives_generator_and_graders_disjoint_halves_of_each_digit(digits_root, tmp_path):
    parts = common.split_for_graders(digits_root, tmp_path / "split", seed=0)
    for dataset in ("mnistm", "svhn"):
        everything = rows(digits_root / dataset / "train.csv")
        gen = rows(parts["generator"] / dataset / "train.csv")
        grad = rows(parts["graders"] / dataset / "train.csv")
        assert not set(gen) & set(grad) and sorted(gen + grad) == sorted(everything)
        for digit in {label for _, label in everything}:
            mine = [r for r in everything if r[1] == digit]
            assert abs(sum(r[1] == digit for r in grad) - len(mine) / 2) <= 0.5
        # both parts are course-layout folders the readers accept, with the full test split
        assert len(load_digit_split(parts["generator"], dataset, "train", progress=False)) == len(gen)
        assert rows(parts["graders"] / dataset / "test.csv") == rows(digits_root / dataset / "test.csv")
    summary = json.loads((tmp_path / "split" / "split.json").read_text())
    assert summary["seed"] == 0 and len(summary["graders/svhn"]["train_csv_sha256"]) == 64
    again = common.split_for_graders(digits_root, tmp_path / "again", seed=0)
    assert rows(again["graders"] / "svhn" / "train.csv") == rows(parts["graders"] / "svhn" / "train.csv")
    other = common.split_for_graders(digits_root, tmp_path / "other", seed=1)
    assert rows(other["graders"] / "svhn" / "train.csv") != rows(parts["graders"] / "svhn" / "train.csv")
