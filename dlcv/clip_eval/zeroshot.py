"""CLIP zero-shot classification (Radford et al., 2021, Sec. 3.1.2 and 3.1.4).

Each class gets a text embedding from one prompt ("A photo of {label}.") or, with prompt
ensembling, the mean of the unit-norm embeddings of several templates, renormalised
(Sec. 3.1.4). An image is assigned the class whose text embedding has the largest cosine
similarity with its image embedding. :func:`zeroshot_job` is the whole of ``PB3/zeroshot.py``.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from dlcv.cli import ArgumentError, UserError, existing_dir, existing_file, prepare_out_dir, read_json
from dlcv.clip_eval.figure import GREEN, RED, captioned_grid
from dlcv.clip_eval.preprocess import encode_image_files
from dlcv.clip_eval.prompts import DEFAULT_TEMPLATE, choose_templates, fill_template, label_text
from dlcv.io.checkpoint import save_text
from dlcv.io.images import list_images
from dlcv.runtime import cuda_backends, pick_device

if TYPE_CHECKING:
    from dlcv.clip_eval.loading import ClipModel

_FILE_NAME = re.compile(r"^(\d+)_([^.]+)$")


@dataclass
class ZeroShotData:
    """The files of ``val/``, their class ids, and every class id -> label of ``id2label.json``."""

    files: list[Path]
    targets: list[int]
    id2label: dict[int, str]


@dataclass
class ZeroShotResult:
    """Per-file predictions: ``predicted[i]`` is a class id; ``confidence`` its softmax probability."""

    files: list[Path]
    targets: list[int]
    predicted: list[int]
    confidence: list[float]

    @property
    def correct(self) -> list[bool]:
        return [t == p for t, p in zip(self.targets, self.predicted, strict=True)]

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / len(self.targets)


def read_id2label(path: str | Path) -> dict[int, str]:
    """``id2label.json`` as ``{int id: label}``; keys may be "0" strings or ints, or a list."""
    path = existing_file(path, "id2label.json")
    raw = read_json(path, "id2label.json")
    if isinstance(raw, list):
        raw = dict(enumerate(raw))
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{path}: expected a non-empty mapping of class id to label")
    out: dict[int, str] = {}
    for key, label in raw.items():
        try:
            class_id = int(key)
        except (TypeError, ValueError):
            raise UserError(f"{path}: class id {key!r} is not an integer") from None
        if not isinstance(label, str) or not label.strip():
            raise UserError(f"{path}: label of class {key!r} must be a non-empty string")
        out[class_id] = label
    return dict(sorted(out.items()))


def read_zeroshot_folder(root: str | Path) -> ZeroShotData:
    """Read ``root/val/{class_id}_{image_id}.png`` and ``root/id2label.json``, checking both."""
    root = existing_dir(root, "zero-shot data folder")
    id2label = read_id2label(root / "id2label.json")
    val = existing_dir(root / "val", "image folder")
    files = list_images(val)
    if not files:
        raise UserError(f"{val}: no images (expected val/{{class_id}}_{{image_id}}.png files)")
    targets = []
    for path in files:
        match = _FILE_NAME.match(path.stem)
        if match is None:
            raise UserError(f"{path}: file name is not {{class_id}}_{{image_id}}.png")
        class_id = int(match.group(1))
        if class_id not in id2label:
            raise UserError(f"{path}: class id {class_id} is not in {root / 'id2label.json'}")
        targets.append(class_id)
    return ZeroShotData(files, targets, id2label)


def text_classifier(
    clip: ClipModel, labels: Sequence[str], templates: Sequence[str], clean: bool = False
) -> torch.Tensor:
    """Unit-norm class embeddings ``(C, D)``: per class, the mean of its templates' embeddings.

    Every template is encoded for all classes at once; the average of the unit-norm
    embeddings is renormalised (prompt ensembling, CLIP paper Sec. 3.1.4). Computed once.
    """
    if not templates:
        raise UserError("no prompt templates given")
    total = None
    for template in templates:
        prompts = [fill_template(template, label_text(label, clean)) for label in labels]
        embeddings = clip.encode_texts(prompts)
        total = embeddings if total is None else total + embeddings
    return torch.nn.functional.normalize(total, dim=-1)


def classify(
    image_features: torch.Tensor, classifier: torch.Tensor, logit_scale: float = 100.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row index of the most similar class per image, and its softmax probability."""
    logits = logit_scale * image_features.float() @ classifier.float().t()
    probs = logits.softmax(dim=-1)
    confidence, index = probs.max(dim=-1)
    return index, confidence


def run_zeroshot(
    clip: ClipModel,
    data: ZeroShotData,
    templates: Sequence[str] = (DEFAULT_TEMPLATE,),
    clean_labels: bool = False,
    batch_size: int = 256,
    workers: int = 0,
    progress: bool = True,
) -> ZeroShotResult:
    """Classify every file of ``data`` among all classes of its ``id2label``."""
    class_ids = list(data.id2label)
    classifier = text_classifier(clip, [data.id2label[i] for i in class_ids], templates, clean_labels)
    features = encode_image_files(
        clip, data.files, batch_size, workers, desc="encoding images" if progress else None
    )
    index, confidence = classify(features, classifier, clip.logit_scale)
    predicted = [class_ids[i] for i in index.tolist()]
    return ZeroShotResult(list(data.files), list(data.targets), predicted, confidence.tolist())


def pick_cases(correct: Sequence[bool], k: int = 5, seed: int = 0) -> tuple[list[int], list[int]]:
    """Up to ``k`` indices of right and ``k`` of wrong predictions, drawn with ``seed``, sorted."""
    rng = random.Random(seed)
    right = [i for i, ok in enumerate(correct) if ok]
    wrong = [i for i, ok in enumerate(correct) if not ok]
    return sorted(rng.sample(right, min(k, len(right)))), sorted(rng.sample(wrong, min(k, len(wrong))))


def write_predictions_csv(result: ZeroShotResult, id2label: dict[int, str], path: Path) -> Path:
    """One row per file: file, class id, label, predicted id, predicted label, correct, confidence
    (written atomically: a link at ``path`` is replaced, never followed)."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["file", "class_id", "label", "pred_id", "pred_label", "correct", "confidence"])
    for file, t, p, c in zip(result.files, result.targets, result.predicted, result.confidence, strict=True):
        writer.writerow([file.name, t, id2label[t], p, id2label[p], int(t == p), f"{c:.4f}"])
    return save_text(text.getvalue(), path)


# --- the job of PB3/zeroshot.py -----------------------------------------------------------------

#: What :func:`zeroshot_job` writes in its output folder.
OUTPUT_FILES = ("predictions.csv", "cases.png", "summary.json")


@dataclass
class ZeroShotJob:
    """The settings of ``PB3/zeroshot.py``: classify ``data/val/`` with ``clip`` (a checkpoint or
    folder; default: :func:`~dlcv.clip_eval.sources.resolve_clip_source`'s search) using ``templates``
    (plus the CLIP paper's CIFAR ensemble with ``ensemble``; the default prompt if neither), and write
    :data:`OUTPUT_FILES` to ``output_dir``; ``seed`` draws the cases shown."""

    data: str | Path
    output_dir: str | Path = "outputs/clip_zeroshot"
    clip: str | None = None
    templates: list[str] = field(default_factory=list)
    ensemble: bool = False
    clean_labels: bool = False
    batch_size: int = 256
    workers: int = 4
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0


def zeroshot_job(job: ZeroShotJob) -> dict:
    """Check the inputs, classify, print the accuracy with five right and five wrong cases, write
    :data:`OUTPUT_FILES`; returns the summary (what ``summary.json`` holds)."""
    from dlcv.clip_eval.loading import load_clip  # transformers: only once the inputs are good

    if job.workers < 0:
        raise ArgumentError(f"`workers` must be 0 or more, got {job.workers}")
    templates = choose_templates(job.templates, job.ensemble)
    data = read_zeroshot_folder(job.data)
    prepare_out_dir(job.output_dir, "--output_dir", create=False)  # fail before the long run
    device = pick_device(job.device)
    with cuda_backends(device):  # TF32 and cuDNN autotuning for this job only, restored after
        clip = load_clip(job.clip, device, job.precision)
        result = run_zeroshot(clip, data, templates, job.clean_labels, job.batch_size, job.workers)

    labels = data.id2label
    form = "underscores read as spaces" if job.clean_labels else "as given (underscores kept)"
    n_right = sum(result.correct)
    print(f"CLIP: {clip.source}")
    print(f"prompts: {len(templates)} template(s), e.g. {templates[0]!r}; labels {form}")
    print(f"accuracy: {100 * result.accuracy:.2f}% ({n_right}/{len(result.files)}, {len(labels)} classes)")
    right, wrong = pick_cases(result.correct, 5, job.seed)
    for title, cases in (("correctly classified", right), ("wrongly classified", wrong)):
        print(f"{title}:")
        for i in cases:
            print(
                f"  {result.files[i].name}  true: {labels[result.targets[i]]}  "
                f"predicted: {labels[result.predicted[i]]}"
            )

    out = prepare_out_dir(job.output_dir)
    csv_name, figure_name, summary_name = OUTPUT_FILES
    write_predictions_csv(result, labels, out / csv_name)
    cases = right + wrong
    captions = [(f"true: {labels[result.targets[i]]}", f"pred: {labels[result.predicted[i]]}") for i in cases]
    captioned_grid(
        [result.files[i] for i in cases],
        captions,
        [GREEN] * len(right) + [RED] * len(wrong),
        out / figure_name,
    )
    summary = ZeroShotSummary(
        accuracy=result.accuracy,
        correct=n_right,
        total=len(result.files),
        classes=len(labels),
        templates=list(templates),
        label_form=form,
        clip=clip.source,
        right_cases=[result.files[i].name for i in right],
        wrong_cases=[result.files[i].name for i in wrong],
    ).to_json()
    save_text(json.dumps(summary, indent=2) + "\n", out / summary_name)
    return summary


@dataclass(frozen=True)
class ZeroShotSummary:
    """What ``PB3/zeroshot.py`` writes to ``summary.json`` (:func:`zeroshot_job`) and ``python -m
    dlcv.report`` reads (:meth:`load`): the accuracy and its counts, the prompts, how the labels
    were read, the CLIP model, and the names of the five right and five wrong cases shown."""

    accuracy: float
    correct: int
    total: int
    classes: int
    templates: list[str]
    label_form: str
    clip: str
    right_cases: list[str]
    wrong_cases: list[str]

    def to_json(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: object, where: str | Path = "the zero-shot summary") -> ZeroShotSummary:
        """The summary of :meth:`to_json`'s mapping; one :class:`UserError` naming ``where`` when it is
        not what ``PB3/zeroshot.py`` writes."""
        try:
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            names = {key: data[key] for key in ("templates", "right_cases", "wrong_cases")}
            if not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in names.values()):
                raise ValueError("templates, right_cases and wrong_cases must be lists of strings")
            if not names["templates"]:
                raise ValueError("templates is empty")
            counts = [data[key] for key in ("correct", "total", "classes")]
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
                raise ValueError("correct, total and classes must be counts")
            return cls(
                float(data["accuracy"]),
                *counts,
                names["templates"],
                str(data["label_form"]),
                str(data["clip"]),
                names["right_cases"],
                names["wrong_cases"],
            )
        except (KeyError, TypeError, ValueError) as err:
            reason = f"no {err}" if isinstance(err, KeyError) else str(err)
            raise UserError(f"{where} is not what PB3/zeroshot.py writes: {reason}") from None

    @classmethod
    def load(cls, path: str | Path) -> ZeroShotSummary:
        """The summary in the JSON file ``path``; one :class:`UserError` if it is missing or not one."""
        return cls.from_json(read_json(path, "zero-shot summary"), path)
