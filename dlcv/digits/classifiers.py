"""The Problem 1 grader's digit classifiers and a loader for every file format they come in.

* :class:`LeNet` is the course's MNIST-M classifier; its parameter names and shapes equal
  the course's ``Classifier.pth`` (LeCun et al., 1998, "Gradient-based learning applied to
  document recognition", with a 3-channel input and 128/64 hidden units).
* :func:`svhn_resnet34` is the course's SVHN classifier: a ResNet-34 (He et al., 2016) with
  the CIFAR-style stem (3x3 stride-1 first convolution, no max-pool), whose keys equal timm's
  ``resnet34`` and hence the ``detectors`` package's ``resnet34_svhn.pth``.
* :class:`SmallCNN` is a fast CPU alternative for SVHN that our trainer can produce.

:func:`load_digit_classifier` reads the course format ``{"state_dict", "optimizer"}``, plain
state dicts (``.pth``/``.pt``/``.bin``, with or without a ``module.`` prefix) and our
safetensors files, always with ``torch.load(weights_only=True)``, and recognises the
architecture from the keys and shapes when asked for ``"auto"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet34

from dlcv.cli import UserError
from dlcv.io.checkpoint import load_weights, save_checkpoint, save_weights, torch_load

NUM_DIGITS = 10
IGNORED_BUFFERS = ("num_batches_tracked",)
PREFIXES = ("module.", "_orig_mod.")
FORMAT = "dlcv-digit-classifier"


class LeNet(nn.Module):
    """The course's MNIST-M LeNet: two 5x5 conv + max-pool stages and three linear layers.

    Input ``(N, 3, 28, 28)`` normalised with mean = std = 0.5; output logits over digits 0-9.
    Shapes: 28 -conv5-> 24 -pool-> 12 -conv5-> 8 -pool-> 4, so fc1 sees 16 * 4 * 4 = 256.
    """

    def __init__(self, num_classes: int = NUM_DIGITS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(256, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def svhn_resnet34(num_classes: int = NUM_DIGITS) -> nn.Module:
    """torchvision's ResNet-34 with the CIFAR-style stem the course's SVHN classifier uses.

    ``conv1`` becomes a 3x3, stride-1, padding-1 convolution without bias, ``maxpool`` the
    identity and ``fc`` a ``Linear(512, num_classes)``; the state-dict keys then equal timm's
    ``resnet34`` built the same way (``resnet34_svhn.pth`` of the ``detectors`` package).
    """
    model = resnet34(weights=None, num_classes=num_classes)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class SmallCNN(nn.Module):
    """A small VGG-style network (Simonyan & Zisserman, 2015) that trains on SVHN in about a
    minute on a laptop CPU: 3x3 conv-BN-ReLU at 28x28 (``width`` channels), max-pool, two at
    14x14 (``2 * width``), max-pool, two at 7x7 (``4 * width``), global average pooling,
    dropout and a linear classifier (about 0.07 M parameters and 6 M multiply-adds per image
    at the default ``width = 16``).
    """

    def __init__(self, num_classes: int = NUM_DIGITS, width: int = 16) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.features = nn.Sequential(
            *_conv_bn_relu(3, w1),
            nn.MaxPool2d(2),
            *_conv_bn_relu(w1, w2),
            *_conv_bn_relu(w2, w2),
            nn.MaxPool2d(2),
            *_conv_bn_relu(w2, w3),
            *_conv_bn_relu(w3, w3),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(w3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))


ARCHITECTURES: dict[str, Callable[[], nn.Module]] = {
    "lenet": LeNet,
    "resnet34": svhn_resnet34,
    "smallcnn": SmallCNN,
}


def build_digit_classifier(arch: str) -> nn.Module:
    """A freshly initialised classifier of the named architecture (see :data:`ARCHITECTURES`)."""
    if arch not in ARCHITECTURES:
        raise UserError(f"unknown classifier architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch]()


def _expected_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes of ``arch``, built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        model = ARCHITECTURES[arch]()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.`` (DataParallel/DDP) and ``_orig_mod.`` (torch.compile) key prefixes."""
    out = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def _mismatch(state: Mapping[str, torch.Tensor], arch: str) -> tuple[list, list, list]:
    """Missing keys, unexpected keys and ``key: got vs expected`` shape mismatches for ``arch``."""
    expected = _expected_shapes(arch)
    missing = [k for k in expected if k not in state and not k.endswith(IGNORED_BUFFERS)]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: {tuple(state[k].shape)} vs {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    return missing, unexpected, shapes


def _describe(arch: str, missing: list, unexpected: list, shapes: list, n: int = 3) -> str:
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - n} more)" if len(items) > n else ""
            parts.append(f"{label} {', '.join(items[:n])}{more}")
    return f"{arch}: " + "; ".join(parts)


def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """The tensors stored in ``path`` and the architecture it names, if any."""
    if path.suffix == ".safetensors":
        state, config = load_weights(path, expected="a classifier written by evaluation/train_classifier.py")
        arch = config.get("arch") if isinstance(config, dict) else None
        return state, arch if isinstance(arch, str) else None
    obj = torch_load(path, "checkpoint", expected="a classifier checkpoint (a state dict)")
    arch = None
    if isinstance(obj, Mapping):
        if isinstance(obj.get("arch"), str):
            arch = obj["arch"]
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(
            f"checkpoint {path} holds no state dict (expected a mapping of tensors or "
            f"a dict with a 'state_dict' entry)"
        )
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if len(state) != len(obj):
        raise UserError(f"checkpoint {path}: its state dict holds non-tensor entries")
    return state, arch


def load_digit_classifier(
    path: str | Path, arch: str = "auto", device: torch.device | str = "cpu"
) -> nn.Module:
    """Load a digit classifier in eval mode from any of the formats in the module docstring.

    ``arch`` is ``"lenet"``, ``"resnet34"``, ``"smallcnn"`` or ``"auto"`` (the architecture is
    read from the file's metadata or recognised by its keys). A file that fits no (or not the
    asked) architecture raises :class:`UserError` naming the file and the first few
    missing/unexpected keys. The architecture name is kept in ``model.arch``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"classifier checkpoint not found: {path}")
    if arch != "auto" and arch not in ARCHITECTURES:
        raise UserError(
            f"unknown classifier architecture {arch!r}; choose auto or one of {', '.join(ARCHITECTURES)}"
        )
    state, named = _read_state(path)
    state = _strip_prefixes(state)
    candidates = [arch] if arch != "auto" else ([named] if named in ARCHITECTURES else list(ARCHITECTURES))
    reports = []
    for cand in candidates:
        missing, unexpected, shapes = _mismatch(state, cand)
        if not (missing or unexpected or shapes):
            model = ARCHITECTURES[cand]()
            full = dict(model.state_dict())  # keeps untouched buffers such as num_batches_tracked
            full.update(state)
            model.load_state_dict(full, strict=True)
            model.arch = cand
            return model.to(device).eval()
        reports.append(
            (len(missing) + len(unexpected) + len(shapes), _describe(cand, missing, unexpected, shapes))
        )
    best = min(reports)[1]
    what = "the asked architecture" if len(candidates) == 1 else "any known architecture"
    raise UserError(f"checkpoint {path} does not fit {what} ({', '.join(candidates)}): {best}")


def save_digit_classifier(
    model: nn.Module, path: str | Path, arch: str, extra: Mapping[str, object] | None = None
) -> Path:
    """Save ``model``'s weights as safetensors (atomically) with the config
    ``{"arch": arch, "format": "dlcv-digit-classifier", **extra}`` in the metadata."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown classifier architecture {arch!r}")
    config = {"arch": arch, "format": FORMAT, **(extra or {})}
    return save_weights(model.state_dict(), path, config)


def save_course_checkpoint(
    model: nn.Module, optimizer_state: Mapping | None, path: str | Path, arch: str = "lenet"
) -> Path:
    """Save in the course's ``Classifier.pth`` format ``{"state_dict", "optimizer"}`` (plus
    ``"arch"``), atomically.

    Only tensors, numbers, strings and containers are stored, so both the course grader's
    ``torch.load`` + ``load_state_dict(state["state_dict"])`` and
    ``torch.load(weights_only=True)`` read it.
    """
    payload = {
        "state_dict": {k: v.detach().to("cpu") for k, v in model.state_dict().items()},
        "optimizer": _to_cpu(dict(optimizer_state)) if optimizer_state is not None else {},
        "arch": arch,
    }
    return save_checkpoint(payload, path)


def _to_cpu(obj: object) -> object:
    """``obj`` with every tensor inside (nested dicts/lists/tuples) moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu")
    if isinstance(obj, Mapping):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
