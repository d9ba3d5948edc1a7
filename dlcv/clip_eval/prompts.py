"""Prompt templates for CLIP zero-shot classification and how labels go into them.

The default is the course's single prompt "A photo of {label}."; the ensemble is the 18
CIFAR-10/100 templates released with the CLIP paper (Radford et al., 2021, Sec. 3.1.4).
Plain strings only (no torch), so command lines can show them in ``--help`` at once.
"""

from __future__ import annotations

from dlcv.cli import UserError

DEFAULT_TEMPLATE = "A photo of {label}."
#: The 18 CIFAR-10/100 prompt templates of the CLIP paper's released prompt list.
CIFAR_TEMPLATES = (
    "a photo of a {label}.",
    "a blurry photo of a {label}.",
    "a black and white photo of a {label}.",
    "a low contrast photo of a {label}.",
    "a high contrast photo of a {label}.",
    "a bad photo of a {label}.",
    "a good photo of a {label}.",
    "a photo of a small {label}.",
    "a photo of a big {label}.",
    "a photo of the {label}.",
    "a blurry photo of the {label}.",
    "a black and white photo of the {label}.",
    "a low contrast photo of the {label}.",
    "a high contrast photo of the {label}.",
    "a bad photo of the {label}.",
    "a good photo of the {label}.",
    "a photo of the small {label}.",
    "a photo of the big {label}.",
)


def label_text(label: str, clean: bool) -> str:
    """The label as it goes into a prompt: as given, or with underscores read as spaces."""
    return " ".join(label.replace("_", " ").split()) if clean else label


def fill_template(template: str, text: str) -> str:
    """Put ``text`` where the template has ``{label}`` (or ``{}``)."""
    if "{label}" not in template and "{}" not in template:
        raise UserError(f"prompt template {template!r} has no {{label}} placeholder")
    return template.replace("{label}", text).replace("{}", text)


def choose_templates(extra: list[str] | None, ensemble: bool) -> list[str]:
    """``--template`` values, plus the CIFAR ensemble when asked; the default prompt if neither."""
    templates = list(extra or [])
    for template in templates:
        fill_template(template, "x")  # refuse a template without a placeholder up front
    if ensemble:
        templates += list(CIFAR_TEMPLATES)
    return templates or [DEFAULT_TEMPLATE]
