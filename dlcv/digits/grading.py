"""The Problem 1 digit grader: read generated digits, classify them, report accuracy.

It follows the course's grader: every file in ``OUT/mnistm`` and ``OUT/svhn`` is read, its
label is the first character of its file name, it is converted to RGB, resized to 28x28
(PIL bilinear, what ``torchvision.transforms.Resize`` does to PIL images) and normalised with
mean = std = 0.5 per channel; MNIST-M images go to a LeNet and SVHN images to the SVHN
classifier. The report is the course's three lines::

    MNIST-M acc = 0.9780 (correct/total = 489/500)
    SVHN acc = 0.9620 (correct/total = 481/500)
    acc = 0.9700

where ``acc`` is the mean of the two accuracies. Pass lines: 0.90 (simple baseline) and
0.95 (strong baseline) per dataset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from dlcv.cli import ArgumentError, UserError, read_json, warn
from dlcv.io.images import open_image

DATASETS = ("mnistm", "svhn")
DISPLAY_NAMES = {"mnistm": "MNIST-M", "svhn": "SVHN"}
IMAGE_SIZE = 28
BASELINES = {"simple": 0.90, "strong": 0.95}
#: File names looked for next to ``--checkpoint`` when no SVHN classifier is given.
SVHN_SIBLINGS = ("svhn_classifier.safetensors", "resnet34_svhn.pth")


def label_from_name(path: str | Path) -> int:
    """The digit a file stands for: the first character of its name (``3_012.png`` -> 3)."""
    name = Path(path).name
    if not name or not ("0" <= name[0] <= "9"):
        raise UserError(
            f"cannot read the label of {path}: file names must start with the digit 0-9 "
            f"the image shows, as in {{digit}}_{{idx:03d}}.png (e.g. 3_012.png)"
        )
    return int(name[0])


def load_digit_image(path: str | Path, size: int = IMAGE_SIZE) -> torch.Tensor:
    """One image as uint8 ``(3, size, size)``: RGB-converted, resized with PIL bilinear if needed."""
    return _load_sized(path, size)[0]


def _load_sized(path: str | Path, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """:func:`load_digit_image` and the image's own ``(width, height)``."""
    try:
        with open_image(path) as im:
            original = im.size
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            array = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None
    return torch.from_numpy(array.copy()).permute(2, 0, 1), original


def digit_files(folder: str | Path) -> list[Path]:
    """The files the grader reads in ``folder``, sorted: every entry except hidden files
    (``.DS_Store``, ...) and sub-folders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(
            f"folder not found: {folder} (expected the generated digits {folder}/{{digit}}_{{idx:03d}}.png)"
        )
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not p.is_dir())


def read_digit_folder(
    folder: str | Path, size: int = IMAGE_SIZE
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Every image of ``folder`` as uint8 ``(N, 3, size, size)``, its labels and file names.

    A file whose name does not start with a digit, an unreadable image or an empty folder
    raises :class:`UserError` naming it. Images of another size are resized, as the course's
    grader does, with a one-line warning: Problem 1's outputs must be 28x28.
    """
    files = digit_files(folder)
    if not files:
        raise UserError(
            f"no images in {folder} (expected files named {{digit}}_{{idx:03d}}.png, e.g. 0_001.png)"
        )
    labels = [label_from_name(p) for p in files]
    loaded = [_load_sized(p, size) for p in files]
    odd = [(p, wh) for p, (_, wh) in zip(files, loaded, strict=True) if wh != (size, size)]
    if odd:
        path, (w, h) = odd[0]
        warn(
            f"{len(odd)} of {len(files)} images in {folder} are not {size}x{size} (e.g. {path.name} is "
            f"{w}x{h}); they are resized to {size}x{size} as the course's grader does, but Problem 1's "
            f"outputs must be {size}x{size}"
        )
    images = torch.stack([image for image, _ in loaded])
    return images, torch.tensor(labels, dtype=torch.long), [p.name for p in files]


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` to float with mean = std = 0.5 per channel, i.e. ``[-1, 1]``
    (the same operations, in the same order, as ``ToTensor`` + ``Normalize(0.5, 0.5)``)."""
    return images.float().div(255.0).sub(0.5).div(0.5)


@torch.inference_mode()
def logits(
    model: nn.Module, images: torch.Tensor, device: torch.device | str = "cpu", batch_size: int = 256
) -> torch.Tensor:
    """Class scores (float32, on the CPU) of a uint8 ``(N, 3, 28, 28)`` batch, in eval mode.

    Runs in fp32 (no autocast) so that borderline images get the same class as in the
    course's fp32 grader; the networks are small, so this costs little.
    """
    if batch_size < 1:
        raise ArgumentError(f"`batch_size` must be positive, got {batch_size}")
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start : start + batch_size].to(device, non_blocking=True))
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(model(x).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 10)


def predict(
    model: nn.Module, images: torch.Tensor, device: torch.device | str = "cpu", batch_size: int = 256
) -> torch.Tensor:
    """Predicted digits (int64, on the CPU): the argmax of :func:`logits`."""
    return logits(model, images, device, batch_size).argmax(dim=1)


def accuracy_stats(preds: torch.Tensor, labels: torch.Tensor) -> dict:
    """``{"acc", "correct", "total", "per_digit": {d: [correct, total]}}``."""
    hits = preds.cpu() == labels.cpu()
    correct, total = int(hits.sum()), len(labels)
    per_digit = {
        d: [int(hits[labels == d].sum()), int((labels == d).sum())] for d in range(10) if (labels == d).any()
    }
    return {
        "acc": correct / total if total else 0.0,
        "correct": correct,
        "total": total,
        "per_digit": per_digit,
    }


def wilson_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a binomial proportion ``correct / total`` (Wilson 1927;
    it stays inside [0, 1] and is honest near 0 and 1, where the normal approximation is not)."""
    if total <= 0:
        return (0.0, 1.0)
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def check_output_folder(folder: str | Path) -> Path:
    """``folder`` if it holds the sub-folders ``mnistm/`` and ``svhn/``; else a UserError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArgumentError(
            f"`folder` not found: {folder} (expected {folder}/mnistm and {folder}/svhn "
            f"with the generated {{digit}}_{{idx:03d}}.png)"
        )
    missing = [name for name in DATASETS if not (folder / name).is_dir()]
    if missing:
        raise ArgumentError(
            f"`folder` {folder} has no {' or '.join(m + '/' for m in missing)} sub-folder "
            f"(expected {folder}/mnistm and {folder}/svhn, as hw2_1.sh writes them)"
        )
    return folder


def grade_digit_folder(
    folder: str | Path,
    mnistm_model: nn.Module,
    svhn_model: nn.Module,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> dict:
    """Grade ``folder/mnistm`` with ``mnistm_model`` and ``folder/svhn`` with ``svhn_model``.

    Returns ``{"mnistm": stats, "svhn": stats, "acc": mean of the two accuracies}`` with the
    stats of :func:`accuracy_stats`. Both folders are read (and checked) before any model runs.
    """
    folder = check_output_folder(folder)
    data = {name: read_digit_folder(folder / name) for name in DATASETS}
    result: dict = {}
    for name, model in (("mnistm", mnistm_model), ("svhn", svhn_model)):
        images, labels, _ = data[name]
        result[name] = accuracy_stats(predict(model, images, device, batch_size), labels)
    result["acc"] = (result["mnistm"]["acc"] + result["svhn"]["acc"]) / 2
    return result


@dataclass(frozen=True)
class DatasetGrade:
    """One dataset's grade (:func:`accuracy_stats`): the accuracy, its counts and, per digit,
    ``(correct, total)``."""

    acc: float
    correct: int
    total: int
    per_digit: dict[int, tuple[int, int]]

    def to_json(self) -> dict:
        per_digit = {d: [c, t] for d, (c, t) in self.per_digit.items()}
        return {"acc": self.acc, "correct": self.correct, "total": self.total, "per_digit": per_digit}

    @classmethod
    def from_json(cls, data: Any) -> DatasetGrade:
        """The grade of :meth:`to_json`'s mapping (digit keys as JSON writes them, ``"0"``..``"9"``);
        ValueError when it is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("per_digit"), dict):
            raise ValueError("a dataset's grade is a mapping with acc, correct, total and per_digit")
        try:
            per_digit = {int(d): (int(ct[0]), int(ct[1])) for d, ct in data["per_digit"].items()}
            grade = cls(float(data["acc"]), int(data["correct"]), int(data["total"]), per_digit)
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"a dataset's grade is incomplete ({type(err).__name__}: {err})") from None
        if not 0.0 <= grade.acc <= 1.0 or not 0 <= grade.correct <= grade.total:
            raise ValueError(f"acc {grade.acc} or correct/total {grade.correct}/{grade.total} out of range")
        return grade


@dataclass(frozen=True)
class GradesRecord:
    """What ``evaluation/digit_classifier.py --json`` writes (:func:`grades_record`) and
    ``python -m dlcv.report`` reads (:meth:`load`): each dataset's grade, the mean accuracy, the
    graded folder, the two classifiers and the baselines."""

    folder: str
    mnistm_checkpoint: str
    svhn_checkpoint: str
    baselines: dict[str, float]
    grades: dict[str, DatasetGrade]  # per dataset of DATASETS
    acc: float

    def to_json(self) -> dict:
        paths = {
            "folder": self.folder,
            "mnistm_checkpoint": self.mnistm_checkpoint,
            "svhn_checkpoint": self.svhn_checkpoint,
        }
        grades = {name: grade.to_json() for name, grade in self.grades.items()}
        return {**paths, "baselines": dict(self.baselines), **grades, "acc": self.acc}

    @classmethod
    def from_json(cls, data: Any, where: str | Path = "the grades") -> GradesRecord:
        """The record of :meth:`to_json`'s mapping; one :class:`UserError` naming ``where`` when it is
        not what ``evaluation/digit_classifier.py --json`` writes."""
        try:
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            grades = {name: DatasetGrade.from_json(data.get(name)) for name in DATASETS}
            paths = [data.get(k) for k in ("folder", "mnistm_checkpoint", "svhn_checkpoint")]
            if not all(isinstance(v, str) for v in paths):
                raise ValueError("folder, mnistm_checkpoint and svhn_checkpoint must be paths")
            baselines = {str(k): float(v) for k, v in dict(data.get("baselines", BASELINES)).items()}
            return cls(*paths, baselines, grades, float(data["acc"]))
        except (KeyError, TypeError, ValueError) as err:
            what = "what `evaluation/digit_classifier.py --json` writes"
            raise UserError(f"{where} is not {what}: {err}") from None

    @classmethod
    def load(cls, path: str | Path) -> GradesRecord:
        """The record in the JSON file ``path``; one :class:`UserError` if it is missing or not one."""
        return cls.from_json(read_json(path, "grades file"), path)


def grades_record(
    result: dict, folder: str | Path, mnistm_checkpoint: str | Path, svhn_checkpoint: str | Path
) -> dict:
    """What ``evaluation/digit_classifier.py --json`` writes (:class:`GradesRecord`'s JSON):
    :func:`grade_digit_folder`'s result with the folder, the two checkpoints and the baselines."""
    paths = [str(Path(v).resolve()) for v in (folder, mnistm_checkpoint, svhn_checkpoint)]
    grades = {name: DatasetGrade.from_json(result[name]) for name in DATASETS}
    return GradesRecord(*paths, dict(BASELINES), grades, result["acc"]).to_json()


def format_report(result: dict) -> list[str]:
    """The course grader's three lines: per-dataset accuracy with counts, then their mean."""
    lines = [
        f"{DISPLAY_NAMES[name]} acc = {result[name]['acc']:.4f} "
        f"(correct/total = {result[name]['correct']}/{result[name]['total']})"
        for name in DATASETS
    ]
    lines.append(f"acc = {result['acc']:.4f}")
    return lines


def format_details(result: dict, datasets: Sequence[str] = DATASETS) -> list[str]:
    """Per-digit accuracy and the baseline verdicts of each dataset (beyond the course's lines)."""
    lines = []
    for name in datasets:
        stats = result[name]
        digits = " ".join(f"{d}:{c}/{t}" for d, (c, t) in sorted(stats["per_digit"].items()))
        verdicts = ", ".join(
            f"{kind} {line:.2f} {'passed' if stats['acc'] >= line else 'FAILED'}"
            for kind, line in BASELINES.items()
        )
        lines.append(f"{DISPLAY_NAMES[name]} per digit {digits}; baselines: {verdicts}")
    return lines


def find_svhn_checkpoint(mnistm_checkpoint: str | Path) -> Path:
    """The SVHN classifier next to ``mnistm_checkpoint`` (one of :data:`SVHN_SIBLINGS`, as
    ``evaluation/train_classifier.py`` writes them); UserError telling what to pass if none."""
    here = Path(mnistm_checkpoint).parent
    for name in SVHN_SIBLINGS:
        if (here / name).is_file():
            return here / name
    raise ArgumentError(
        f"no SVHN classifier: pass `svhn_checkpoint` PATH (the course's resnet34_svhn.pth, "
        f"or svhn_classifier.safetensors from evaluation/train_classifier.py); none of "
        f"{', '.join(SVHN_SIBLINGS)} is next to `checkpoint` in {here} "
        "(nothing is downloaded)"
    )
