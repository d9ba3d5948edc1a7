"""Training the grader's digit classifiers (MNIST-M LeNet, SVHN ResNet-34 / small CNN).

Images stay uint8 ``(N, 3, 28, 28)`` in memory (on the training device) and are normalised
exactly like the grader does (:func:`dlcv.digit_grading.normalize`). Training uses AdamW
(Loshchilov & Hutter, 2019) with a linear warm-up and a cosine decay of the learning rate,
label smoothing (Szegedy et al., 2016), light augmentation (small random affine warps,
brightness/contrast jitter; no flips, digits are not symmetric) and bf16 autocast on CUDA.
The schedule runs to its end whichever limit comes first: the epochs or the time budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from dlcv.digit_grading import accuracy_stats, normalize, predict
from dlcv.models.digit_classifiers import build_digit_classifier
from dlcv.runtime import autocast

#: Per-architecture defaults: epochs, batch size, peak learning rate, weight decay.
DEFAULTS: dict[str, dict[str, float]] = {
    "lenet": {"epochs": 30, "batch_size": 128, "lr": 3e-3, "weight_decay": 1e-2},
    "smallcnn": {"epochs": 15, "batch_size": 128, "lr": 3e-3, "weight_decay": 5e-2},
    "resnet34": {"epochs": 15, "batch_size": 256, "lr": 1e-3, "weight_decay": 5e-2},
}
WARMUP_FRACTION = 0.03


@dataclass
class DigitData:
    """Training and held-out images (uint8 ``(N, 3, 28, 28)``) with their digits 0-9."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    heldout_images: torch.Tensor
    heldout_labels: torch.Tensor
    heldout_name: str  # "test", "val" or "train-holdout"


def load_train_and_heldout(root: str | Path, dataset: str, limit: int | None = None,
                           heldout_fraction: float = 0.1, seed: int = 0,
                           progress: bool = True) -> DigitData:
    """Read ``dataset``'s train split and a held-out set: ``test`` if present, else ``val``,
    else a seeded random ``heldout_fraction`` of train (then removed from training).

    ``limit`` caps the number of training images (the held-out split is read in full).
    """
    from dlcv.data.digits import available_splits, load_digit_split

    splits = available_splits(root, dataset)
    held_name = next((s for s in ("test", "val") if s in splits), None)
    train = load_digit_split(root, dataset, "train", limit=limit, progress=progress)
    images, labels = train.images, train.digits
    if held_name is not None:
        held = load_digit_split(root, dataset, held_name, progress=progress)
        return DigitData(images, labels, held.images, held.digits, held_name)
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_held = max(1, round(heldout_fraction * len(images)))
    held_idx, train_idx = perm[:n_held], perm[n_held:]
    return DigitData(images[train_idx], labels[train_idx], images[held_idx], labels[held_idx],
                     "train-holdout")


def augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Light augmentation of a normalised float batch ``(N, 3, H, W)`` in ``[-1, 1]``.

    Random affine warp (rotation up to 10 degrees, scale 0.9-1.1, shift up to ~2 pixels on
    28x28) with border padding, then per-image brightness (+-0.1) and contrast (x0.8-1.2).
    """
    n, device = len(x), x.device

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        r = torch.rand((n, *shape), generator=generator, device=generator.device
                       if generator is not None else device)
        return (lo + (hi - lo) * r).to(device)

    angle = uniform(-math.pi / 18, math.pi / 18)
    scale = uniform(0.9, 1.1)
    shift = uniform(-0.15, 0.15, 2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * uniform(0.8, 1.2, 1, 1, 1) + mean + uniform(-0.1, 0.1, 1, 1, 1)
    return x.clamp(-1.0, 1.0)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on the weight matrices/kernels only (not biases or norms)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def lr_factor(progress: float) -> float:
    """Linear warm-up over the first 3 % of training, then cosine decay to zero."""
    if progress < WARMUP_FRACTION:
        return (progress + 1e-3) / WARMUP_FRACTION
    t = (progress - WARMUP_FRACTION) / (1 - WARMUP_FRACTION)
    return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def train_digit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    arch: str = "lenet",
    *,
    epochs: int | None = None,
    time_budget: float | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    label_smoothing: float = 0.1,
    augmentation: bool = True,
    device: torch.device | str = "cpu",
    seed: int = 0,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    progress: bool = True,
    desc: str | None = None,
) -> nn.Module:
    """Train a digit classifier on uint8 ``images`` ``(N, 3, 28, 28)`` and digits ``labels``.

    Unset hyper-parameters take :data:`DEFAULTS` for ``arch``. ``time_budget`` (seconds)
    compresses the learning-rate schedule so that it ends when the budget is spent, whichever
    of epochs and budget runs out first. Pass ``model``/``optimizer`` to train (or go on
    training) your own; by default a new ``arch`` model and :func:`make_optimizer` are used.
    Returns the model in eval mode, on ``device``, with ``model.arch`` set.
    """
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need as many labels as images, got {len(images)} and {len(labels)}")
    device = torch.device(device)
    hp = DEFAULTS.get(arch, DEFAULTS["smallcnn"])
    epochs = int(epochs if epochs is not None else hp["epochs"])
    batch_size = min(int(batch_size or hp["batch_size"]), len(images))
    lr = lr if lr is not None else hp["lr"]
    weight_decay = weight_decay if weight_decay is not None else hp["weight_decay"]

    torch.manual_seed(seed)
    if model is None:
        model = build_digit_classifier(arch)
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    if optimizer is None:
        optimizer = make_optimizer(model, lr, weight_decay)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=device).manual_seed(seed + 1)
    images = images.to(device)
    labels = labels.to(device)

    steps_per_epoch = len(images) // batch_size
    total = max(1, epochs * steps_per_epoch)
    step, start = 0, time.perf_counter()
    model.train()
    bar = tqdm(total=total, desc=desc or f"train {arch}", disable=not progress, leave=False)
    running_loss, running_acc = 0.0, 0.0
    done = False
    for _epoch in range(epochs):
        order = torch.randperm(len(images), generator=gen).to(device)
        for i in range(steps_per_epoch):
            frac = step / total
            if time_budget is not None:
                frac = max(frac, (time.perf_counter() - start) / time_budget)
            if frac >= 1.0:
                done = True
                break
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * lr_factor(frac)
            idx = order[i * batch_size:(i + 1) * batch_size]
            x = normalize(images[idx])
            if augmentation:
                x = augment(x, aug_gen)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            y = labels[idx]
            with autocast(device):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            if step % 20 == 0 or step == 1:
                running_loss = 0.9 * running_loss + 0.1 * loss.item() if step > 1 else loss.item()
                acc = (logits.argmax(1) == y).float().mean().item()
                running_acc = 0.9 * running_acc + 0.1 * acc if step > 1 else acc
                bar.set_postfix(loss=f"{running_loss:.3f}", acc=f"{running_acc:.3f}")
        if done:
            break
    bar.close()
    model.eval()
    model.arch = arch
    return model


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             device: torch.device | str = "cpu", batch_size: int = 512) -> dict:
    """Accuracy of ``model`` on uint8 ``images`` with the grader's preprocessing.

    Returns :func:`dlcv.digit_grading.accuracy_stats`' ``{"acc", "correct", "total",
    "per_digit"}``.
    """
    return accuracy_stats(predict(model, images, device, batch_size), labels.cpu())
