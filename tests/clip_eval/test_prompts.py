"""dlcv.clip_eval.prompts: label clean-up, template filling and the template choice."""

from __future__ import annotations

import pytest

from dlcv.cli import UserError
from dlcv.clip_eval.prompts import (
    CIFAR_TEMPLATES,
    DEFAULT_TEMPLATE,
    choose_templates,
    fill_template,
    label_text,
)


def test_label_forms():
    assert label_text("palm_tree", clean=False) == "palm_tree"
    assert label_text("palm_tree", clean=True) == "palm tree"
    assert label_text("aquarium__fish_", clean=True) == "aquarium fish"


def test_fill_template():
    assert DEFAULT_TEMPLATE == "A photo of {label}."
    assert fill_template(DEFAULT_TEMPLATE, "apple") == "A photo of apple."
    assert fill_template("a photo of a {}.", "bee") == "a photo of a bee."
    with pytest.raises(UserError, match="no {label} placeholder"):
        fill_template("a photo", "bee")


def test_cifar_templates_are_the_papers_eighteen():
    assert len(CIFAR_TEMPLATES) == 18 and len(set(CIFAR_TEMPLATES)) == 18
    assert all("{label}" in t for t in CIFAR_TEMPLATES)
    assert CIFAR_TEMPLATES[0] == "a photo of a {label}."


def test_choose_templates():
    assert choose_templates(None, ensemble=False) == [DEFAULT_TEMPLATE]
    assert choose_templates(None, ensemble=True) == list(CIFAR_TEMPLATES)
    assert choose_templates(["x {label}"], ensemble=True) == ["x {label}", *CIFAR_TEMPLATES]
    assert choose_templates(["x {}", "y {label}"], ensemble=False) == ["x {}", "y {label}"]
    with pytest.raises(UserError, match="'no placeholder' has no {label}"):
        choose_templates(["no placeholder"], ensemble=False)
