"""The Problem 1 digit grader: read generated digits, classify them, report accuracy.

It follows the course's grader: every image in ``OUT/mnistm`` and ``OUT/svhn`` is read,
its label is the first character of its file name, it is resized to 28x28 and normalised
with mean = std = 0.5 per channel; MNIST-M images go to a LeNet and SVHN images to the SVHN
classifier. Accuracy passes at 0.90 (simple baseline) and 0.95 (strong baseline).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from torch import nn

from dlcv.cli import UserError
from dlcv.imageio import list_images, load_rgb

DATASETS = ("mnistm", "svhn")
DISPLAY_NAMES = {"mnistm": "MNIST-M", "svhn": "SVHN"}
IMAGE_SIZE = 28
BASELINES = {"simple": 0.90, "strong": 0.95}


def label_from_name(path: str | Path) -> int:
    """The digit a file stands for: the first character of its name (``3_012.png`` -> 3)."""
    name = Path(path).name
    if not name or not name[0].isdigit() or not name[0].isascii():
        raise UserError(f"cannot read the label of {path}: the file name must start with "
                        f"the digit 0-9 it shows (e.g. 3_012.png)")
    return int(name[0])


def read_digit_folder(folder: str | Path, size: int = IMAGE_SIZE) -> tuple[torch.Tensor,
                                                                         torch.Tensor,
                                                                         list[str]]:
    """Every image of ``folder`` as uint8 ``(N, 3, size, size)``, its labels and file names.

    Images of another size are resized with bilinear, antialiased interpolation (what
    torchvision's ``Resize`` does to the course grader's PIL images).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"folder not found: {folder} (expected generated digits in it)")
    files = list_images(folder)
    if not files:
        raise UserError(f"no images in {folder} (expected files such as 0_001.png)")
    labels = [label_from_name(p) for p in files]
    images = []
    for p in files:
        img = load_rgb(p)
        if tuple(img.shape[1:]) != (size, size):
            img = TF.resize(img, [size, size], antialias=True)
        images.append(img)
    return torch.stack(images), torch.tensor(labels, dtype=torch.long), [p.name for p in files]


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` to float with mean = std = 0.5 per channel, i.e. ``[-1, 1]``."""
    return images.float().div(255.0).sub(0.5).div(0.5)


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, device: torch.device | str = "cpu",
            batch_size: int = 256) -> torch.Tensor:
    """Predicted digits (int64, on the CPU) of a uint8 ``(N, 3, 28, 28)`` batch.

    Runs in fp32 (no autocast) so that borderline images get the same class as in the
    course's fp32 grader; the networks are tiny, so this costs nothing noticeable.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start:start + batch_size].to(device, non_blocking=True))
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        out.append(model(x).argmax(dim=1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy_stats(preds: torch.Tensor, labels: torch.Tensor) -> dict:
    """``{"acc", "correct", "total", "per_digit": {d: [correct, total]}}``."""
    hits = preds == labels
    correct, total = int(hits.sum()), len(labels)
    per_digit = {d: [int(hits[labels == d].sum()), int((labels == d).sum())]
                 for d in range(10) if (labels == d).any()}
    return {"acc": correct / total if total else 0.0, "correct": correct, "total": total,
            "per_digit": per_digit}


def grade_digit_folder(folder: str | Path, mnistm_model: nn.Module, svhn_model: nn.Module,
                       device: torch.device | str = "cpu", batch_size: int = 256) -> dict:
    """Grade ``folder/mnistm`` and ``folder/svhn``.

    Returns ``{"mnistm": stats, "svhn": stats, "acc": mean of the two accuracies}`` with the
    stats of :func:`accuracy_stats`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--folder not found: {folder} (expected {folder}/mnistm and "
                        f"{folder}/svhn)")
    result: dict = {}
    for name, model in (("mnistm", mnistm_model), ("svhn", svhn_model)):
        images, labels, _ = read_digit_folder(folder / name)
        result[name] = accuracy_stats(predict(model, images, device, batch_size), labels)
    result["acc"] = (result["mnistm"]["acc"] + result["svhn"]["acc"]) / 2
    return result


def format_report(result: dict, datasets: Sequence[str] = DATASETS) -> list[str]:
    """The course grader's lines, then whether each dataset passes the baselines."""
    lines = []
    for name in datasets:
        s = result[name]
        lines.append(f"{DISPLAY_NAMES[name]} acc = {s['acc']:.4f} "
                     f"(correct/total = {s['correct']}/{s['total']})")
    lines.append(f"acc = {result['acc']:.4f}")
    for name in datasets:
        verdicts = [f"{kind} baseline {line:.2f} {'passed' if result[name]['acc'] >= line else 'FAILED'}"
                    for kind, line in BASELINES.items()]
        lines.append(f"{DISPLAY_NAMES[name]}: " + ", ".join(verdicts))
    return lines
