"""Problem 1's generation: guided sampling of chosen classes and the course's output files."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import torch

from dlcv.cli import ArgumentError, prepare_out_dir, refuse_links, warn
from dlcv.data.digits import DATASETS, NUM_DIGITS, joint_label
from dlcv.diffusion import NoiseSchedule, classifier_free_guidance
from dlcv.diffusion.driver import SAMPLERS, is_stochastic, sample_batches
from dlcv.diffusion.samplers import EpsFn, StepCallback
from dlcv.io.images import save_png, to_uint8
from dlcv.runtime import autocast


class DigitModel(Protocol):
    """What sampling needs of a Problem 1 model: :class:`~dlcv.digits.unet.DigitUNet`,
    :class:`~dlcv.digits.latent_mlp.DigitLatentMLP` or their
    :class:`~dlcv.digits.model.NoisePredictor` (which predicts the noise)."""

    null_class: int
    latent_shape: tuple[int, ...]  # one sample of the diffusion: an image, or a latent vector

    def decode(self, latents: torch.Tensor) -> torch.Tensor: ...

    def clamp_x0(self, x0: torch.Tensor) -> torch.Tensor: ...  # keeps x0 in the images' range

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def __call__(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...


#: Guidance: one scale for every class, or one per dataset (``[MNIST-M's, SVHN's]``).
Guidance = float | Sequence[float]


def guidance_scales(guidance: Guidance, labels: torch.Tensor) -> float | torch.Tensor:
    """The guidance scale of each joint label: ``guidance`` itself if it is one number, else
    ``guidance[dataset]`` per label (a tensor like ``labels``)."""
    if isinstance(guidance, int | float):
        return float(guidance)
    scales = torch.tensor([float(g) for g in guidance])
    if len(scales) != len(DATASETS):
        raise ArgumentError(
            f"`guidance`: one number, or one per dataset ({len(DATASETS)}), got {len(scales)}"
        )
    return scales[torch.div(labels.cpu(), NUM_DIGITS, rounding_mode="floor")].to(labels.device)


def guided_eps_fn(
    model: DigitModel,
    labels: torch.Tensor,
    guidance: Guidance,
    amp: bool = True,
    interval: tuple[float, float] | None = None,
) -> EpsFn:
    """The model conditioned on ``labels`` with classifier-free guidance (one doubled batch),
    per dataset if ``guidance`` has one scale each, and only at timesteps inside ``interval``."""
    null = torch.full_like(labels, model.null_class)
    eps_fn = classifier_free_guidance(model, labels, null, guidance_scales(guidance, labels), interval)
    device = labels.device

    def run(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with autocast(device, enabled=amp):
            return eps_fn(x, t).float()

    return run


@dataclass(frozen=True)
class SampleSettings:
    """How a Problem 1 model is sampled: one set of defaults and one validation for every
    caller (``hw2_1.sh``, the report's figures, the benches). Built by :meth:`resolve` from a
    model's config (its ``sample`` section) and the values a caller gives; ``None`` = the
    model's. ``guidance`` is one scale, or one per dataset ``(MNIST-M's, SVHN's)``;
    ``guidance_interval = (t_low, t_high)`` guides only at those timesteps."""

    sampler: str = "ddim"
    steps: int = 50
    guidance: float | tuple[float, ...] = 2.0
    eta: float = 0.0
    guidance_interval: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ArgumentError(f"`sampler` must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        scales = self.guidance if isinstance(self.guidance, tuple) else (self.guidance,)
        if isinstance(self.guidance, tuple) and len(self.guidance) != len(DATASETS):
            raise ArgumentError(
                f"`guidance`: one number, or one per dataset ({len(DATASETS)}), got {len(self.guidance)}"
            )
        if not 1 <= self.steps <= 1000:
            raise ArgumentError(f"`steps` must be 1-1000, got {self.steps}")
        if not all(math.isfinite(g) for g in scales):
            raise ArgumentError(f"`guidance` must be a finite number, got {self.guidance}")
        if not (math.isfinite(self.eta) and self.eta >= 0):
            raise ArgumentError(f"`eta` must be 0 or more, got {self.eta}")
        if self.guidance_interval is not None:
            low, high = self.guidance_interval
            if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high):
                raise ArgumentError(
                    f"`guidance_interval` must be two timesteps 0 <= low <= high, "
                    f"got {list(self.guidance_interval)}"
                )

    @classmethod
    def resolve(cls, config: Mapping[str, Any] | None = None, **given: Any) -> SampleSettings:
        """The model's ``sample`` settings (``config`` is the model's whole config or its
        ``sample`` section) with the non-``None`` values of ``given`` instead: the one place
        where a Problem 1 sampler's defaults are decided and checked (a caller's flags and a
        model file's config alike)."""
        section = dict((config or {}).get("sample", config or {}))
        values = {k: v for k, v in section.items() if k in _FIELDS}
        values.update({k: v for k, v in given.items() if v is not None})
        unknown = sorted(set(given) - _FIELDS)
        if unknown:
            raise TypeError(f"unknown sample settings: {', '.join(unknown)}")
        for key in ("steps", "eta", "guidance"):
            if isinstance(values.get(key), bool):
                raise ArgumentError(f"`{key}` must be a number, got {values[key]}")
        try:
            if "guidance" in values:
                g = values["guidance"]
                values["guidance"] = tuple(float(v) for v in g) if isinstance(g, list | tuple) else float(g)
            if values.get("guidance_interval") is not None:
                values["guidance_interval"] = tuple(float(v) for v in values["guidance_interval"])
            if "steps" in values:
                steps = values["steps"]
                if not math.isfinite(float(steps)) or float(steps) != int(steps):
                    raise ArgumentError(f"`steps` must be 1-1000, got {steps!r}")
                values["steps"] = int(steps)
            if "eta" in values:
                values["eta"] = float(values["eta"])
        except (TypeError, ValueError) as err:
            raise ArgumentError(f"sample settings: {err}") from None
        return cls(**values)

    @property
    def shown_steps(self) -> int:
        """The network evaluations' steps as a person counts them (ancestral DDPM walks all 1000)."""
        return 1000 if self.sampler == "ddpm" else self.steps

    def describe(self) -> str:
        """One line: ``dpm++ 50 steps, guidance 5, eta 1``."""
        g = self.guidance
        guidance = "/".join(f"{v:g}" for v in g) if isinstance(g, tuple) else f"{g:g}"
        text = f"{self.sampler} {self.shown_steps} steps, guidance {guidance}, eta {self.eta:g}"
        if self.guidance_interval is not None:
            text += f" (guided at t {self.guidance_interval[0]:g}-{self.guidance_interval[1]:g})"
        return text

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`sample_labels`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class SampleRequest:
    """The sampler settings a caller asks for (a command line's flags); ``None`` = the model's.
    :meth:`settings` resolves them against a model's config into its :class:`SampleSettings`:
    every job that samples a Problem 1 model (``hw2_1``, the report's figures, Problem 2's
    experiments on the digit model, the benches' grading) goes through it, once."""

    sampler: str | None = None
    steps: int | None = None
    guidance: float | tuple[float, ...] | None = None
    eta: float | None = None
    guidance_interval: tuple[float, float] | None = None

    def settings(self, config: Mapping[str, Any] | None) -> SampleSettings:
        """:meth:`SampleSettings.resolve` of the model's ``config`` with these values instead."""
        return SampleSettings.resolve(config, **{f.name: getattr(self, f.name) for f in fields(self)})


def add_sample_flags(parser: Any, *, eta: bool = True, sampler: bool = True) -> None:
    """The ``--sampler``, ``--steps``, ``--guidance`` and ``--eta`` flags of a command line that
    samples a Problem 1 model (read back by :func:`sample_request`); each defaults to the model's."""
    if sampler:
        parser.add_argument(
            "--sampler",
            choices=SAMPLERS,
            help="ddim, dpm++ (DPM-Solver++(2M): as good in fewer steps) or ddpm (all 1000 "
            "steps); default: the model's, as hw2_1.sh",
        )
    parser.add_argument("--steps", type=int, help="DDIM / DPM-Solver++ steps (default: the model's)")
    parser.add_argument(
        "--guidance",
        type=float,
        help="classifier-free guidance scale; 1 = no guidance (default: the model's)",
    )
    if eta:
        parser.add_argument(
            "--eta",
            type=float,
            help="fresh noise of DDIM / DPM-Solver++: 0 = deterministic "
            "(ODE), 1 = DDPM-like (SDE); default: the model's",
        )


def sample_request(args: Any) -> SampleRequest:
    """The :class:`SampleRequest` of the flags :func:`add_sample_flags` added (absent ones: ``None``)."""
    return SampleRequest(**{f.name: getattr(args, f.name, None) for f in fields(SampleRequest)})


#: Every forward pass holds a multiple of this many images (a short batch is padded with
#: copies of its last image, dropped afterwards). PyTorch's CPU kernels take other code
#: paths for batches of fewer than 8 images (16 rows with guidance), which round
#: differently; with whole multiples each image is computed the same way in any batch.
BATCH_MULTIPLE = 8


@torch.no_grad()
def sample_labels(
    model: DigitModel,
    schedule: NoiseSchedule,
    labels: torch.Tensor,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    guidance: Guidance = 2.0,
    eta: float = 0.0,
    guidance_interval: tuple[float, float] | None = None,
    seed: int = 0,
    batch_size: int = 500,
    noise: torch.Tensor | None = None,
    callback: StepCallback | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Generate one image per label; returns uint8 ``(N, 3, H, W)`` on the CPU.

    The diffusion runs in the model's space (``model.latent_shape``: the image for the UNet,
    PCA coefficients for the latent MLP) and ``model.decode`` gives the images.

    A seed and an image index give the same image whatever ``batch_size`` (on the CPU,
    bit for bit): the initial noise is drawn at once on the CPU from ``seed`` (or given),
    the fresh noise of DDPM, DDIM and DPM-Solver++ with ``eta > 0`` comes from one generator per image
    (seeded from ``seed`` up front), and every forward pass holds a whole multiple of
    :data:`BATCH_MULTIPLE` images. ``callback`` sees only the first batch. ``progress``
    shows one bar over all batches and steps. ``guidance`` is one scale or one per dataset;
    ``guidance_interval = (t_low, t_high)`` guides only at those timesteps (see
    :func:`~dlcv.diffusion.guidance.classifier_free_guidance`).
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    if noise is None:
        noise = torch.randn(len(labels), *model.latent_shape, generator=generator)
    image_seeds = None
    if is_stochastic(sampler, eta):
        image_seeds = torch.randint(2**62, (len(labels),), generator=generator).tolist()

    def make_eps_fn(index: torch.Tensor) -> EpsFn:
        return guided_eps_fn(model, labels[index].to(device), guidance, interval=guidance_interval)

    return sample_batches(
        make_eps_fn,
        noise,
        schedule,
        sampler=sampler,
        steps=steps,
        eta=eta,
        clip_x0=model.clamp_x0,  # x0 kept in the images' range [-1, 1]
        batch_size=max(1, batch_size),
        batch_multiple=BATCH_MULTIPLE,
        image_seeds=image_seeds,
        device=device,
        channels_last=True,  # 2-3x faster convolutions on CPUs, tensor cores on GPUs
        decode=lambda x: to_uint8(model.decode(x)),
        callback=callback,
        progress=progress,
    )


def course_labels(n_per_digit: int) -> torch.Tensor:
    """Joint labels in output order: dataset, then digit 0-9, ``n_per_digit`` of each."""
    return torch.tensor(
        [joint_label(d, digit) for d in range(len(DATASETS)) for digit in range(NUM_DIGITS)]
    ).repeat_interleave(n_per_digit)


def course_file_names(n_per_digit: int) -> set[str]:
    """The PNG names :func:`write_course_outputs` writes in each dataset folder."""
    return {f"{digit}_{idx:03d}.png" for digit in range(NUM_DIGITS) for idx in range(1, n_per_digit + 1)}


def prepare_course_folders(out_dir: str | Path, n_per_digit: int) -> list[Path]:
    """Create (and check writable) ``OUT/mnistm`` and ``OUT/svhn`` before sampling.

    PNGs already there that this run will not overwrite are left alone, with a one-line
    warning: the course's grader scores every image in the folder, so they would count.
    """
    folders, ours = [], course_file_names(n_per_digit)
    prepare_out_dir(out_dir)
    refuse_links(out_dir, DATASETS, "output folder")  # OUT/svhn a link: images would go elsewhere
    for name in DATASETS:
        folder = prepare_out_dir(Path(out_dir) / name, "output folder")
        others = sorted(p.name for p in folder.glob("*.png") if p.name not in ours)
        if others:
            warn(
                f"{folder} already holds {len(others)} other PNG file(s) (e.g. {others[0]}), left as they "
                "are: the grader scores every image in the folder, so remove them or use an empty --out-dir"
            )
        folders.append(folder)
    return folders


def write_course_outputs(images: torch.Tensor, out_dir: str | Path, n_per_digit: int) -> list[Path]:
    """Write images ordered as :func:`course_labels` to ``OUT/{mnistm,svhn}/{digit}_{idx:03d}.png``."""
    out_dir, paths = Path(out_dir), []
    for i, image in enumerate(images):
        label, idx = divmod(i, n_per_digit)
        domain, digit = divmod(label, NUM_DIGITS)
        paths.append(save_png(image, out_dir / DATASETS[domain] / f"{digit}_{idx + 1:03d}.png"))
    return paths


def sample_course_set(
    model: DigitModel, schedule: NoiseSchedule, n_per_digit: int = 50, **kwargs
) -> torch.Tensor:
    """All 20 classes x ``n_per_digit`` images in :func:`course_labels` order."""
    return sample_labels(model, schedule, course_labels(n_per_digit), **kwargs)


_FIELDS = {f.name for f in fields(SampleSettings)}

__all__: Sequence[str] = [
    "BATCH_MULTIPLE",
    "SAMPLERS",
    "SampleRequest",
    "SampleSettings",
    "add_sample_flags",
    "course_labels",
    "guidance_scales",
    "guided_eps_fn",
    "prepare_course_folders",
    "sample_request",
    "sample_course_set",
    "sample_labels",
    "write_course_outputs",
]
