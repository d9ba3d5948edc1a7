"""Problem 2 (``hw2_2.sh``): DDIM on the pretrained face UNet, from noise files to PNGs.

The course convention (``docs/course_interface.md``): the linear schedule,
50 DDIM steps ``981, 961, ..., 1`` with eta 0, the last step to ``alpha_bar[0]``,
``x0`` clamped to ``[-1, 1]``; each image min-max normalised on its own and
written as ``<noise stem>.png``. The sampling itself is the core's
:func:`dlcv.diffusion.ddim_sample`, reached through the batched driver
:func:`dlcv.diffusion.driver.sample_batches`.

The device, the precision and the output folder are resolved once, by :func:`hw2_2` (or
another entry point: :func:`face_precision`, :func:`dlcv.runtime.pick_device`,
:func:`dlcv.cli.prepare_out_dir`), and passed down resolved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path

import torch

from dlcv.cli import UserError, existing_dir, existing_file, prepare_out_dir
from dlcv.diffusion import NoiseSchedule
from dlcv.diffusion.driver import constant_eps, sample_batches
from dlcv.diffusion.samplers import EpsFn
from dlcv.faces.unet import DOWN_FACTOR, FaceUNet, infer_base_channels
from dlcv.io.checkpoint import check_finite_weights, load_weights, state_dict_mismatch, torch_load
from dlcv.io.images import minmax_to_uint8, save_png
from dlcv.runtime import DTYPES, autocast, cuda_backends, pick_device, resolve_precision

NUM_STEPS = 50
PRECISIONS = ("auto", "fp32", "tf32", "fp16", "bf16")


# ---- inputs ---------------------------------------------------------------------------


def load_noise(path: str | Path) -> torch.Tensor:
    """One noise file: a float tensor ``(1, 3, H, W)`` or ``(3, H, W)``, H and W multiples of 32.

    Returns it as float32 ``(3, H, W)``.
    """
    path = existing_file(path, "noise file")
    noise = torch_load(path, "noise file", expected="a noise tensor saved with torch.save")
    if not isinstance(noise, torch.Tensor):
        kind = type(noise).__name__
        raise UserError(f"noise file {path} holds a {kind}, expected a tensor (1, 3, H, W)")
    shape = tuple(noise.shape)
    if noise.ndim == 4 and shape[0] == 1:
        noise = noise[0]
    if noise.ndim != 3 or noise.shape[0] != 3:
        raise UserError(f"noise file {path} has shape {shape}, expected (1, 3, H, W) or (3, H, W)")
    if noise.shape[1] % DOWN_FACTOR or noise.shape[2] % DOWN_FACTOR:
        raise UserError(f"noise file {path} has shape {shape}: height and width must divide by {DOWN_FACTOR}")
    if not noise.is_floating_point():
        raise UserError(f"noise file {path} holds {noise.dtype} values, expected floating point")
    noise = noise.float()
    if not bool(torch.isfinite(noise).all()):
        raise UserError(f"noise file {path} contains NaN or infinite values")
    return noise.contiguous()


def load_noises(noise_dir: str | Path) -> tuple[list[str], torch.Tensor]:
    """Every ``*.pt`` in ``noise_dir``, sorted by name: ``(stems, noises (N, 3, H, W))``."""
    folder = existing_dir(noise_dir, "noise folder")
    paths = sorted(p for p in folder.glob("*.pt") if p.is_file())
    if not paths:
        raise UserError(f"noise folder {folder} contains no .pt files")
    noises = [load_noise(p) for p in paths]
    shapes = {tuple(n.shape) for n in noises}
    if len(shapes) > 1:
        raise UserError(f"noise files in {folder} differ in shape: {sorted(shapes)}")
    return [p.stem for p in paths], torch.stack(noises)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A plain state dict from ``.pt`` (``weights_only``) or ``.safetensors``."""
    path = existing_file(path, "UNet state dict")
    if path.suffix == ".safetensors":
        return load_weights(path, expected="a face UNet state dict in safetensors format")[0]
    state = torch_load(path, "UNet state dict", expected="a face UNet state dict (UNet.pt)")
    if isinstance(state, Mapping) and ("model" in state or "ema" in state) and "step" in state:
        raise UserError(
            f"{path} is a training checkpoint, not a UNet state dict: pass the exported unet.pt "
            "from the same folder"
        )
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state dict (a mapping of names to tensors)")
    return dict(state)


def load_face_unet(path: str | Path, device: torch.device | str = "cpu") -> FaceUNet:
    """A :class:`FaceUNet` of the width stored in ``path``, loaded strictly, in eval mode.

    The network is built on the meta device (no random initialisation, no second
    copy of the weights) and the float32 tensors of the file are assigned to it
    by ``load_state_dict(strict=True, assign=True)`` after checking every name and
    shape, so a state dict that does not fit is reported in one line.
    """
    state = read_state_dict(path)
    try:
        base = infer_base_channels(state)
        with torch.device("meta"):
            model = FaceUNet(base)
    except (KeyError, ValueError):
        raise UserError(f"{path} does not fit the face UNet: no usable 4-D down1.weight") from None
    problem = state_dict_mismatch(model, state)
    if problem:
        raise UserError(f"{path} does not fit the face UNet (width {base}): {problem}")
    for name, expected in model.state_dict().items():
        value = state[name]
        if expected.is_floating_point() and not value.is_floating_point():
            raise UserError(
                f"{path}: weight {name} holds {str(value.dtype).removeprefix('torch.')} values, "
                "expected floating point (the face UNet's weights are float32)"
            )
    check_finite_weights(state, path)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device).eval()


# ---- precision ------------------------------------------------------------------------

#: ``auto`` for hw2_2 on CUDA: TF32, this problem's documented exception to the project's
#: precision rule (:func:`dlcv.runtime.resolve_precision`; fp32 on the CPU as everywhere).
#:
#: Why TF32 and not the card's half type: TF32 keeps fp32's range and a 10-bit mantissa
#: inside matmuls and convolutions only (accumulation stays fp32), and PyTorch runs cuDNN
#: convolutions in TF32 by default (``torch.backends.cudnn.allow_tf32`` is True out of the
#: box), so the course's ground truth was most likely made with it; its rounding is
#: expected to stay orders of magnitude below the grading line (mean MSE 20 on the 0-255
#: scale). A half type (fp16: 10-bit mantissa and a small range; bf16: 8-bit mantissa)
#: through 50 deterministic steps can move pixels by whole grey levels and is opt-in
#: (``--precision fp16`` / ``bf16``); ``fp32`` turns TF32 off for an exact fp32 run
#: (compare the two with ``evaluation/face_mse.py`` when in doubt).
AUTO_PRECISION = "tf32"


def face_precision(precision: str, device: torch.device) -> str:
    """:func:`dlcv.runtime.resolve_precision` with this problem's choices and ``auto`` (TF32 on CUDA)."""
    return resolve_precision(precision, device, auto=AUTO_PRECISION, choices=PRECISIONS)


def precision_context(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The CUDA backends for a resolved ``precision`` (:func:`face_precision`), for the duration:
    ``fp32`` turns TF32 off (exact fp32 everywhere), the others turn it on; cuDNN autotuning on
    (:func:`dlcv.runtime.cuda_backends`, the flags restored afterwards). The CPU is unaffected."""
    _check_resolved(precision)
    return cuda_backends(device, tf32=precision != "fp32")


def _check_resolved(precision: str) -> None:
    if precision not in DTYPES:
        raise ValueError(f"precision must be resolved by face_precision() first, got {precision!r}")


def face_eps_fn(
    model: torch.nn.Module, device: torch.device, precision: str = "fp32", channels_last: bool = False
) -> EpsFn:
    """``eps_fn(x, t)`` of the UNet on ``device``: autocast to fp16 / bf16 when the resolved
    ``precision`` says so (CUDA or CPU; fp32 weights), channels-last inputs when asked;
    always returns float32."""
    _check_resolved(precision)
    dtype = DTYPES[precision]
    if channels_last:
        model.to(memory_format=torch.channels_last)

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            return model(x, t).float()

    return eps_fn


# ---- generation -----------------------------------------------------------------------


def generate(
    model: torch.nn.Module,
    noises: torch.Tensor,
    *,
    device: torch.device,
    precision: str,
    batch_size: int | None = None,
    channels_last: bool | None = None,
    schedule: NoiseSchedule | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Denoise ``noises`` ``(N, 3, H, W)`` under the course convention; float, on the CPU.

    ``model`` lives on ``device``; ``precision`` is resolved (:func:`face_precision`). All
    noises go in one batch unless ``batch_size`` is given; on CUDA an out-of-memory error
    halves the batch and retries. ``channels_last`` defaults to on for CUDA.
    """
    if channels_last is None:
        channels_last = device.type == "cuda"
    make_eps = constant_eps(face_eps_fn(model, device, precision, channels_last))
    schedule = schedule or NoiseSchedule.linear()
    size = batch_size or noises.shape[0]
    with precision_context(precision, device):
        while True:
            try:
                return sample_batches(
                    make_eps,
                    noises,
                    schedule,
                    sampler="ddim",
                    steps=NUM_STEPS,
                    eta=0.0,
                    clip_x0=True,
                    batch_size=size,
                    device=device,
                    progress=progress,
                )
            except torch.OutOfMemoryError:
                if size == 1:
                    raise UserError("out of GPU memory even at batch size 1") from None
                size = max(1, size // 2)
                torch.cuda.empty_cache()
                print(f"out of memory: retrying with batch size {size}")


def write_images(images: torch.Tensor, stems: list[str], out_dir: Path) -> list[Path]:
    """Min-max normalise each image on its own and write ``out_dir/<stem>.png`` (``out_dir``
    prepared by the caller: :func:`dlcv.cli.prepare_out_dir`)."""
    pixels = minmax_to_uint8(images)
    return [save_png(img, out_dir / f"{stem}.png") for img, stem in zip(pixels, stems, strict=True)]


def hw2_2(
    noise_dir: str | Path,
    out_dir: str | Path,
    unet_path: str | Path,
    *,
    batch_size: int | None = None,
    precision: str = "auto",
    device: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """The whole of ``hw2_2.sh``: load noises and UNet, sample, write PNGs; returns the paths.

    Every input is checked (noises, UNet, output folder, precision) before the
    sampling starts.
    """
    stems, noises = load_noises(noise_dir)
    dev = pick_device(device)
    precision = face_precision(precision, dev)
    model = load_face_unet(unet_path, dev)
    out = prepare_out_dir(out_dir)
    images = generate(
        model, noises, device=dev, precision=precision, batch_size=batch_size, progress=progress
    )
    return write_images(images, stems, out)
