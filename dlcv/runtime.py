"""Device choice, mixed precision and seeding, in one place for every entry point.

Precision: the one rule
-----------------------
:func:`resolve_precision` decides, for every network the project runs, which
floating-point format it computes in. ``--precision`` (``auto``, ``fp32``, ``fp16``,
``bf16``; Problem 2 also ``tf32``) is passed to it unchanged:

* an explicit format always wins (on any device: ``fp16`` on a CPU works, slowly);
* ``auto`` on the CPU is fp32;
* ``auto`` on CUDA is **bf16 on compute capability 8.0 and above** (Ampere, Ada,
  Hopper, ...: bf16 tensor cores, fp32's range) and **fp16 below it** (Turing, e.g. the
  course's RTX 2080 Ti at 7.5, and Volta: they have fp16 tensor cores and no bf16 units,
  so bf16 there is emulated, slow, and misses PyTorch's fused attention kernels).
  ``torch.cuda.is_bf16_supported()`` is not the test: it is true on Turing too.

Two callers keep a different ``auto`` on CUDA, passed as ``auto=``, both for exactness
of graded numbers, never for speed:

* Problem 2's ``hw2_2.sh`` (:mod:`dlcv.faces.ddim`): ``tf32`` (fp32 storage, TF32 inside
  matmuls and convolutions), because its images are graded by MSE against the course's
  ground truth, most likely made with PyTorch's defaults;
* CLIP (:mod:`dlcv.clip_eval`): ``fp16`` on every card, the format OpenAI released
  its weights in, so the Problem 3 scores do not move with the card.

What fp16 needs is done where it is used: the trainer scales the loss with a
``GradScaler`` when it autocasts to fp16 (:func:`grad_scaler`); Stable Diffusion's VAE
decode checks its output for NaN/inf and decodes again in fp32 when a half-precision
decode overflowed; latents, guidance, sampler updates, losses and grader scores are
computed in fp32 (the networks' outputs are cast with ``.float()``).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from dlcv.cli import PRECISIONS, ArgumentError

#: The storage/compute dtype of each format (``tf32`` is fp32 tensors with TF32 matmuls).
DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: The first compute capability with bf16 tensor cores (Ampere).
BF16_MIN_CAPABILITY = (8, 0)


#: The device types the project runs on (its precision, memory and speed paths are CPU and CUDA).
DEVICE_TYPES = ("cpu", "cuda")


def pick_device(name: str = "auto") -> torch.device:
    """``"auto"`` gives CUDA when available, else the CPU; ``cpu``, ``cuda`` and ``cuda:N`` are
    checked against this machine; other device types (``mps``, ``xla``, ``meta``, ...) are
    refused with one line, before any work."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ArgumentError(f"`device` {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type not in DEVICE_TYPES:
        raise ArgumentError(
            f"`device` {name}: this project runs on auto, cpu, cuda or cuda:N, not {device.type}"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"`device` {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ArgumentError(
            f"`device` {name}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
        )
    return device


def configure_backends(device: torch.device, tf32: bool = True) -> None:
    """Set the CUDA backends for a job on ``device``, for the rest of the process: TF32 matmuls
    and convolutions on (``tf32``; off for an exact fp32 job), cuDNN autotuning on. The CPU has
    no TF32 and is left alone. :func:`cuda_backends` is the same for one block."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True


@contextlib.contextmanager
def cuda_backends(device: torch.device, tf32: bool = True) -> Iterator[None]:
    """:func:`configure_backends` for the duration of a block, the flags restored afterwards:
    how a library job (``hw2_1``, ``hw2_2``, a training run) sets them without changing them for
    a program that calls it."""
    flags = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    configure_backends(device, tf32)
    try:
        yield
    finally:
        (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark,
        ) = flags


def cuda_capability(device: torch.device) -> tuple[int, int]:
    """The compute capability ``(major, minor)`` of a CUDA device, e.g. ``(7, 5)`` for a 2080 Ti."""
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def resolve_precision(
    precision: str,
    device: torch.device | str,
    *,
    auto: str | None = None,
    choices: tuple[str, ...] = PRECISIONS,
) -> str:
    """The format to compute in: ``"fp32"``, ``"tf32"``, ``"fp16"`` or ``"bf16"`` (the rule above).

    ``precision`` is the ``--precision`` value; ``choices`` are the ones the caller offers
    (a :class:`UserError` names them otherwise). ``auto`` is the caller's documented
    exception for CUDA (``"tf32"`` for Problem 2, ``"fp16"`` for CLIP); without it, ``auto``
    on CUDA is bf16 from compute capability 8.0 on and fp16 below.
    """
    if precision not in choices:
        raise ArgumentError(f"`precision` must be one of {', '.join(choices)}, got {precision!r}")
    device = torch.device(device)
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    if auto is not None:
        return auto
    return "bf16" if cuda_capability(device) >= BF16_MIN_CAPABILITY else "fp16"


def resolve_dtype(
    precision: str,
    device: torch.device | str,
    *,
    auto: str | None = None,
    choices: tuple[str, ...] = PRECISIONS,
) -> torch.dtype:
    """The torch dtype of :func:`resolve_precision`'s answer (``tf32`` is ``torch.float32``)."""
    return DTYPES[resolve_precision(precision, device, auto=auto, choices=choices)]


def autocast(
    device: torch.device, dtype: torch.dtype | None = None, enabled: bool = True
) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` (default: ``auto``'s choice for ``device``) when it is a half type.

    Autocast keeps norms, softmax and losses in fp32 while matmuls and convolutions run in
    the half type. fp32 (so the CPU by default) turns autocast off for the block, also
    inside an outer autocast (an fp32 network called from a half-precision region computes
    in fp32); ``enabled=False`` leaves things as they are.
    """
    if isinstance(dtype, bool):
        raise TypeError("autocast(device, dtype, enabled): pass enabled= by name")
    if not enabled:
        return contextlib.nullcontext()
    dtype = dtype or resolve_dtype("auto", device)
    if dtype not in (torch.float16, torch.bfloat16):
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype) -> torch.amp.GradScaler:
    """A loss scaler that is on exactly when training autocasts to fp16.

    fp16's smallest normal number is 6e-5, so small gradients flush to zero unless the
    loss is scaled up first; the scaler also skips a step whose gradients overflowed.
    bf16 and fp32 have fp32's range and get a disabled scaler (every call passes through).
    """
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
