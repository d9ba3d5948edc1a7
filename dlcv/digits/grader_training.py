"""Training the grader's digit classifiers (MNIST-M LeNet, SVHN small CNN or ResNet-34).

The optimisation itself is the project's one training loop (:func:`dlcv.training.train`:
AdamW, linear warm-up + cosine decay, gradient clipping, EMA weights, mixed precision and
channels_last on CUDA, atomic resumable checkpoints, a time budget). What is specific to the
classifiers lives here: reading a training and a held-out split, an epoch-wise shuffled batch
sampler over uint8 images kept in memory, light augmentation, the label-smoothed
cross-entropy (Szegedy et al., 2016, "Rethinking the Inception Architecture", Sec. 7), the
evaluation with the grader's own preprocessing, and writing the artefacts the grader reads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dlcv.cli import ArgumentError, UserError
from dlcv.digits.classifiers import (
    ARCHITECTURES,
    build_digit_classifier,
    save_course_checkpoint,
    save_digit_classifier,
)
from dlcv.digits.grading import accuracy_stats, normalize, predict
from dlcv.io.checkpoint import load_checkpoint
from dlcv.runtime import seed_everything
from dlcv.training import TrainConfig, train

#: The architecture trained for each dataset when none is asked for: the course's LeNet for
#: MNIST-M (so that ``Classifier.pth`` is a drop-in for the course file) and a small CNN
#: for SVHN (strong, and fast on a CPU; ResNet-34 is the GPU choice).
DEFAULT_ARCH = {"mnistm": "lenet", "svhn": "smallcnn"}

#: Per-architecture defaults: epochs, batch size, peak learning rate, weight decay, EMA decay.
DEFAULTS: dict[str, dict[str, float]] = {
    "lenet": {"epochs": 20, "batch_size": 64, "lr": 3e-3, "weight_decay": 1e-4, "ema_decay": 0.99},
    "smallcnn": {"epochs": 12, "batch_size": 64, "lr": 3e-3, "weight_decay": 5e-4, "ema_decay": 0.99},
    "resnet34": {"epochs": 15, "batch_size": 128, "lr": 1e-3, "weight_decay": 5e-4, "ema_decay": 0.999},
}
WARMUP_FRACTION = 0.03
COURSE_CHECKPOINT = "Classifier.pth"


@dataclass
class DigitData:
    """Training and held-out images (uint8 ``(N, 3, 28, 28)``) with their digits 0-9."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    heldout_images: torch.Tensor
    heldout_labels: torch.Tensor
    heldout_name: str  # "test", "val" or "train-holdout"


def load_train_and_heldout(
    root: str | Path,
    dataset: str,
    limit: int | None = None,
    heldout_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> DigitData:
    """Read ``dataset``'s train split and a held-out set: ``test`` if present, else ``val``,
    else a seeded random ``heldout_fraction`` of train (then removed from training).

    ``limit`` caps the number of training images read (the held-out split is read in full).
    """
    from dlcv.data.digits import available_splits, load_digit_split

    splits = available_splits(root, dataset)
    held_name = next((s for s in ("test", "val") if s in splits), None)
    train_split = load_digit_split(root, dataset, "train", limit=limit, progress=progress)
    images, labels = train_split.images, train_split.digits
    if held_name is not None:
        held = load_digit_split(root, dataset, held_name, progress=progress)
        return DigitData(images, labels, held.images, held.digits, held_name)
    if len(images) < 2:
        raise UserError(f"{dataset}: need at least 2 training images to hold some out, got {len(images)}")
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    n_held = min(len(images) - 1, max(1, round(heldout_fraction * len(images))))
    held_idx, train_idx = perm[:n_held], perm[n_held:]
    return DigitData(
        images[train_idx], labels[train_idx], images[held_idx], labels[held_idx], "train-holdout"
    )


def augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Light augmentation of a normalised float batch ``(N, 3, H, W)`` in ``[-1, 1]``.

    A random affine warp (rotation up to 10 degrees, scale 0.9-1.1, shift up to ~2 pixels
    on 28x28; border padding; no flips, digits are not symmetric), then per-image contrast
    (x0.8-1.2) and brightness (+-0.1). The random numbers come from ``generator`` (any
    device) and are moved to the batch's device.
    """
    n, device = len(x), x.device
    gen_device = generator.device if generator is not None else device

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        r = torch.rand((n, *shape), generator=generator, device=gen_device)
        return (lo + (hi - lo) * r).to(device)

    angle = uniform(-math.pi / 18, math.pi / 18)
    scale = uniform(0.9, 1.1)
    shift = uniform(-0.15, 0.15, 2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * uniform(0.8, 1.2, 1, 1, 1) + mean + uniform(-0.1, 0.1, 1, 1, 1)
    return x.clamp(-1.0, 1.0)


def epoch_sampler(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    """A ``next_batch(generator)`` that walks through a fresh random permutation each epoch
    (every image seen once per epoch; the last, incomplete batch of an epoch is dropped)."""
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need as many labels as images, got {len(images)} and {len(labels)}")
    batch_size = min(batch_size, len(images))
    state = {"order": torch.empty(0, dtype=torch.long), "pos": 0}

    def next_batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if state["pos"] + batch_size > len(state["order"]):
            state["order"], state["pos"] = torch.randperm(len(images), generator=generator), 0
        idx = state["order"][state["pos"] : state["pos"] + batch_size]
        state["pos"] += batch_size
        return images[idx], labels[idx]

    return next_batch


def classification_loss(
    label_smoothing: float = 0.1, augmentation: bool = True
) -> Callable[[nn.Module, tuple[torch.Tensor, torch.Tensor], torch.Generator], torch.Tensor]:
    """``loss_fn(net, (uint8 images, digits), generator)`` for :func:`dlcv.training.train`:
    the grader's normalisation, :func:`augment`, then label-smoothed cross-entropy."""

    def loss_fn(
        net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], generator: torch.Generator
    ) -> torch.Tensor:
        images, labels = batch
        x = normalize(images)
        if augmentation:
            x = augment(x, generator)
        if x.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return F.cross_entropy(net(x).float(), labels, label_smoothing=label_smoothing)

    return loss_fn


def train_digit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    out_dir: str | Path,
    arch: str = "lenet",
    *,
    epochs: int | None = None,
    steps: int | None = None,
    time_budget: float | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    ema_decay: float | None = None,
    label_smoothing: float = 0.1,
    augmentation: bool = True,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
) -> nn.Module:
    """Train an ``arch`` classifier on uint8 ``images`` ``(N, 3, 28, 28)`` and digits ``labels``.

    Runs :func:`dlcv.training.train` in ``out_dir`` (``checkpoint.pt``, ``metrics.jsonl``).
    Unset hyper-parameters take :data:`DEFAULTS` for ``arch``; ``steps`` overrides ``epochs``
    (``epochs * (N // batch_size)`` steps); ``time_budget`` (seconds) shortens the run and its
    cosine schedule to end in time; ``ema_decay=0`` trains without EMA. Returns the EMA model
    (or the model) in eval mode with ``model.arch`` set.
    """
    if arch not in ARCHITECTURES:
        raise UserError(f"unknown classifier architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if len(images) != len(labels) or len(images) == 0:
        raise UserError(f"need as many labels as images (at least one), got {len(images)} and {len(labels)}")
    hp = DEFAULTS[arch]
    batch_size = min(int(batch_size or hp["batch_size"]), len(images))
    if steps is None:
        steps = int(epochs if epochs is not None else hp["epochs"]) * (len(images) // batch_size)
    if steps < 1:
        raise UserError(f"the run must have at least one step, got {steps}")
    if ema_decay is None:
        ema_decay = hp["ema_decay"]
    cfg = TrainConfig(
        out_dir=Path(out_dir),
        steps=steps,
        batch_size=batch_size,
        lr=lr if lr is not None else hp["lr"],
        weight_decay=weight_decay if weight_decay is not None else hp["weight_decay"],
        warmup_steps=max(1, round(WARMUP_FRACTION * steps)),
        grad_clip=2.0,
        ema_decay=ema_decay or None,
        log_every=max(1, min(50, steps // 10)),
        ckpt_every=0,
        seed=seed,
        resume=resume,
        device=device,
        time_budget=time_budget,
    )
    seed_everything(seed)
    model = build_digit_classifier(arch)
    model = train(
        model,
        classification_loss(label_smoothing, augmentation),
        epoch_sampler(images, labels, batch_size),
        cfg,
        config={"arch": arch, "n_train": len(images)},
    )
    model.eval()
    model.arch = arch
    return model


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device | str = "cpu",
    batch_size: int = 512,
) -> dict:
    """Accuracy of ``model`` on uint8 ``images`` with the grader's preprocessing: the stats
    ``{"acc", "correct", "total", "per_digit"}`` of :func:`dlcv.digits.grading.accuracy_stats`."""
    return accuracy_stats(predict(model, images, device, batch_size), labels.cpu())


@dataclass
class TrainedGrader:
    """What :func:`train_grader` did: the held-out result and the files it wrote."""

    dataset: str
    arch: str
    n_train: int
    heldout_name: str
    heldout: dict
    seconds: float
    paths: list[Path] = field(default_factory=list)


def train_grader(
    root: str | Path,
    dataset: str,
    out: str | Path,
    *,
    arch: str = "auto",
    limit: int | None = None,
    device: str = "auto",
    seed: int = 0,
    **train_kwargs: object,
) -> TrainedGrader:
    """Train the grader's classifier for ``dataset`` on ``root`` and write it to ``out``.

    Writes ``out/{dataset}_classifier.safetensors`` (weights + ``arch``/accuracy metadata),
    for a MNIST-M LeNet also ``out/Classifier.pth`` in the course's format (loads in the
    course's grader unchanged), and keeps the training run in ``out/train_{dataset}/``.
    ``train_kwargs`` go to :func:`train_digit_classifier`.
    """
    arch = DEFAULT_ARCH[dataset] if arch == "auto" else arch
    if arch not in ARCHITECTURES:
        raise ArgumentError(
            f"`arch`: unknown architecture {arch!r}; choose auto or one of {', '.join(ARCHITECTURES)}"
        )
    out = Path(out)
    data = load_train_and_heldout(root, dataset, limit=limit, seed=seed)
    print(
        f"{dataset}: {len(data.train_images)} training images, {len(data.heldout_images)} held out "
        f"({data.heldout_name}); training {arch}",
        flush=True,
    )
    run_dir = out / f"train_{dataset}"
    began = time.perf_counter()
    model = train_digit_classifier(
        data.train_images, data.train_labels, run_dir, arch, device=device, seed=seed, **train_kwargs
    )
    seconds = time.perf_counter() - began
    eval_device = next(model.parameters()).device
    stats = evaluate(model, data.heldout_images, data.heldout_labels, eval_device)
    meta = {
        "dataset": dataset,
        "heldout_split": data.heldout_name,
        "heldout_acc": round(stats["acc"], 6),
        "n_train": len(data.train_images),
    }
    paths = [save_digit_classifier(model, out / f"{dataset}_classifier.safetensors", arch, meta)]
    if dataset == "mnistm" and arch == "lenet":
        optimizer = load_checkpoint(run_dir / "checkpoint.pt").get("optimizer")
        paths.append(save_course_checkpoint(model, optimizer, out / COURSE_CHECKPOINT, arch))
    return TrainedGrader(dataset, arch, len(data.train_images), data.heldout_name, stats, seconds, paths)
