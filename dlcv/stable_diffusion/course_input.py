"""The one reader of Problem 3's ``input.json`` (layout: ``docs/course_interface.md``).

``{key: {"token_name": "<new1>", "prompt": [...], "prompt_4_clip_eval": [...],
"baseline": [[image, text], ...], "src_image": ..., "kind": ...}, ...}``: generation
(``PB3/inference.py``), training (``PB3/train.py``), grading (``evaluation/grade_hw2_3.py``)
and the report all read it here. Generation needs ``token_name`` and ``prompt``; grading
needs ``prompt_4_clip_eval`` and one ``baseline`` pair per evaluation prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcv.cli import UserError, plain_name, read_json


@dataclass
class Concept:
    """One concept of ``input.json``: its key, placeholder token, prompts and grading fields."""

    key: str
    token: str
    prompts: list[str] = field(default_factory=list)  # "prompt": what to generate
    eval_prompts: list[str] = field(default_factory=list)  # "prompt_4_clip_eval"
    baselines: list[tuple[float, float]] = field(default_factory=list)  # [image, text] per eval prompt
    src_image: str | None = None  # the folder name of the concept's images, when not its key
    kind: str | None = None  # "object" or "style", when given


def _strings(value: Any, non_empty: bool = False) -> bool:
    """A list of strings (not empty when ``non_empty``)."""
    if not isinstance(value, list) or (non_empty and not value):
        return False
    return all(isinstance(v, str) for v in value)


def _pairs(value: Any, n: int) -> bool:
    """A list of ``n`` ``[image, text]`` number pairs."""
    if not isinstance(value, list) or len(value) != n:
        return False
    return all(
        isinstance(b, list | tuple) and len(b) == 2 and all(isinstance(x, int | float) for x in b)
        for b in value
    )


def read_input_json(path: str | Path, *, for_grading: bool = False) -> list[Concept]:
    """The concepts of ``path``, checked for generation (default) or for grading; a missing or
    malformed field raises a :class:`UserError` naming the file, the concept and the field."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"input json not found: {path}")
    data = read_json(path, "input json")
    if not isinstance(data, dict) or not data:
        raise UserError(f"{path}: expected an object mapping concept keys to their fields")
    concepts = []
    for key, entry in data.items():
        where = f"{path}: concept {key!r}"
        plain_name(str(key), f"{path}: concept key")  # keys name output (and input) folders
        if not isinstance(entry, dict):
            raise UserError(f"{where}: expected an object")
        token, prompts = entry.get("token_name"), entry.get("prompt")
        eval_prompts, baselines = entry.get("prompt_4_clip_eval"), entry.get("baseline")
        if for_grading:
            if not _strings(eval_prompts):
                raise UserError(f"{where}: 'prompt_4_clip_eval' must be a list of strings")
            if not _pairs(baselines, len(eval_prompts)):
                raise UserError(
                    f"{where}: 'baseline' must hold one [image, text] pair per evaluation prompt "
                    f"({len(eval_prompts)})"
                )
        else:
            if not isinstance(token, str) or not token.strip():
                raise UserError(f"{path}: concept {key!r} has no 'token_name' string")
            if not _strings(prompts, non_empty=True):
                raise UserError(f"{path}: concept {key!r} needs a non-empty 'prompt' list of strings")
        concepts.append(
            Concept(
                key=str(key),
                token=token.strip() if isinstance(token, str) else "",
                prompts=list(prompts) if _strings(prompts) else [],
                eval_prompts=list(eval_prompts) if _strings(eval_prompts) else [],
                baselines=[(float(b[0]), float(b[1])) for b in baselines]
                if _strings(eval_prompts) and _pairs(baselines, len(eval_prompts))
                else [],
                src_image=entry["src_image"] if isinstance(entry.get("src_image"), str) else None,
                kind=entry.get("kind") if isinstance(entry.get("kind"), str) else None,
            )
        )
    return concepts
