"""Grade Problem 3 outputs as the course does (rule in :mod:`dlcv.clip_eval.scores`).

Reads ``input.json`` (through :mod:`dlcv.stable_diffusion.course_input`; per concept key:
``token_name``, ``prompt_4_clip_eval``,
``baseline``), the reference images ``input_dir/{key}/`` and the generated images
``output_dir/{key}/{prompt index}/`` (exactly 25 each). Reference embeddings and the
evaluation prompts' text embeddings are computed once per concept; every folder is
checked before any image is encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlcv.cli import UserError, existing_dir, read_json
from dlcv.clip_eval.preprocess import encode_image_files
from dlcv.clip_eval.scores import (
    IMAGES_PER_PROMPT,
    TEXT_WEIGHT,
    TOP_K,
    image_scores,
    passes,
    select_top_k,
    text_scores,
)
from dlcv.io.images import list_images
from dlcv.stable_diffusion.course_input import Concept

if TYPE_CHECKING:
    from dlcv.clip_eval.loading import ClipModel


@dataclass
class PromptResult:
    """The grade of one prompt: averaged top-5 scores, the baseline and the files kept."""

    key: str
    index: int
    prompt: str
    image_score: float
    text_score: float
    baseline: tuple[float, float]
    top_files: list[str]

    @property
    def image_margin(self) -> float:
        return self.image_score - self.baseline[0]

    @property
    def text_margin(self) -> float:
        return self.text_score - self.baseline[1]

    @property
    def passed(self) -> bool:
        return passes(self.image_score, self.text_score, self.baseline)

    @classmethod
    def from_json(cls, data: Any) -> PromptResult:
        """The result of one entry of :func:`results_to_json` (its margins and pass flag are
        recomputed from the scores); ValueError when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("an entry is a JSON object per prompt")
        try:
            image, text = (float(v) for v in data["baseline"])
            files = data.get("top_files", [])
            if not isinstance(files, list):
                raise ValueError("top_files must be a list")
            scores = float(data["image_score"]), float(data["text_score"])
            key, index, prompt = str(data["key"]), int(data["index"]), str(data.get("prompt", ""))
            return cls(key, index, prompt, *scores, (image, text), [str(f) for f in files])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"an entry is incomplete ({type(err).__name__}: {err})") from None


def prompt_images(output_dir: Path, key: str, index: int) -> list[Path]:
    """The images of ``output_dir/key/index``; refuses any count but 25, as the course does."""
    folder = output_dir / key / str(index)
    images = list_images(folder) if folder.is_dir() else []
    if len(images) != IMAGES_PER_PROMPT:
        raise UserError(f"{folder}: expected exactly {IMAGES_PER_PROMPT} images, found {len(images)}")
    return images


def reference_images(input_dir: Path, key: str) -> list[Path]:
    """The reference images of a concept, ``input_dir/key/*``."""
    folder = existing_dir(input_dir / key, f"reference folder of concept {key!r}")
    images = list_images(folder)
    if not images:
        raise UserError(f"{folder}: no reference images")
    return images


@dataclass
class GradingPlan:
    """What will be graded, checked up front: per concept its references and prompt folders."""

    concepts: list[Concept]
    references: dict[str, list[Path]]
    images: dict[str, list[list[Path]]]


def plan_grading(concepts: Sequence[Concept], input_dir: str | Path, output_dir: str | Path) -> GradingPlan:
    """Check every folder (25 images per prompt, references present) before any encoding."""
    input_dir = existing_dir(input_dir, "input folder")
    output_dir = existing_dir(output_dir, "output folder")
    images = {
        c.key: [prompt_images(output_dir, c.key, p) for p in range(len(c.eval_prompts))] for c in concepts
    }
    references = {c.key: reference_images(input_dir, c.key) for c in concepts}
    return GradingPlan(list(concepts), references, images)


def grade_textual_inversion(
    clip: ClipModel,
    plan: GradingPlan,
    batch_size: int = 32,
    workers: int = 0,
    progress: bool = True,
) -> list[PromptResult]:
    """Grade every prompt of every concept; see :mod:`dlcv.clip_eval.scores` for the rule."""
    results = []
    for concept in plan.concepts:
        ref_features = encode_image_files(
            clip,
            plan.references[concept.key],
            batch_size,
            workers,
            desc=f"references {concept.key}" if progress else None,
        )
        texts = clip.encode_texts(concept.eval_prompts)
        for index, files in enumerate(plan.images[concept.key]):
            features = encode_image_files(
                clip,
                files,
                batch_size,
                workers,
                desc=f"concept {concept.key} prompt {index}" if progress else None,
            )
            chosen = select_top_k(
                image_scores(features, ref_features),
                text_scores(features, texts[index], clip.logit_scale),
                TEXT_WEIGHT,
                TOP_K,
            )
            results.append(
                PromptResult(
                    key=concept.key,
                    index=index,
                    prompt=concept.eval_prompts[index],
                    image_score=chosen.image_score,
                    text_score=chosen.text_score,
                    baseline=concept.baselines[index],
                    top_files=[files[i].name for i in chosen.indices],
                )
            )
    return results


def format_report(results: Sequence[PromptResult]) -> str:
    """Every prompt's scores, baselines, margins and PASS/FAIL, then the pass count."""
    lines = []
    for r in results:
        lines.append(
            f"concept {r.key} prompt {r.index}: "
            f"image {r.image_score:6.2f} (baseline {r.baseline[0]:g}, {r.image_margin:+.2f})  "
            f"text {r.text_score:6.2f} (baseline {r.baseline[1]:g}, {r.text_margin:+.2f})  "
            f"{'PASS' if r.passed else 'FAIL'}  | {r.prompt}"
        )
    lines.append(f"passed {sum(r.passed for r in results)}/{len(results)} prompts")
    return "\n".join(lines)


def results_to_json(results: Sequence[PromptResult]) -> list[dict]:
    """Plain dicts (with margins and pass flag) for a JSON summary (``grade_hw2_3.py --save_json``;
    read back by :func:`load_results`)."""
    return [
        {
            **asdict(r),
            "baseline": list(r.baseline),
            "image_margin": r.image_margin,
            "text_margin": r.text_margin,
            "passed": r.passed,
        }
        for r in results
    ]


def load_results(path: str | Path) -> list[PromptResult]:
    """The results in a JSON file of :func:`results_to_json` (what ``evaluation/grade_hw2_3.py
    --save_json`` writes); one :class:`UserError` naming ``path`` when it is missing or not one."""
    data = read_json(path, "scores file")
    try:
        if not isinstance(data, list):
            raise ValueError("expected a JSON list, one entry per prompt")
        return [PromptResult.from_json(entry) for entry in data]
    except ValueError as err:
        raise UserError(f"{path} is not what `grade_hw2_3.py --save_json` writes: {err}") from None
