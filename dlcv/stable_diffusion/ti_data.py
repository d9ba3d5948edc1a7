"""Training data of Textual Inversion: prompt templates, concept images, augmented views, latents.

Textual Inversion (Gal et al., "An Image is Worth One Word", ICLR 2023, Sec. 4) trains a
placeholder embedding on a handful of images captioned by neutral templates ("a photo of
a S*" for an object, "a painting in the style of S*" for a style). The images are
augmented by random square crops and horizontal flips; here a fixed set of such views
is drawn once from a seed and encoded once by the VAE (:func:`encode_views`), so the
training loop never runs the encoder: it keeps each view's posterior mean and standard
deviation and draws ``z = mean + std * eps`` per step, the same distribution as calling
``latent_dist.sample()`` every step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dlcv.cli import ArgumentError, UserError
from dlcv.io.images import list_images, load_rgb

# Neutral captions; "{}" is replaced by the placeholder token. Written for this project.
OBJECT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}",
    "a photo of the {}",
    "a picture of a {}",
    "an image of the {}",
    "a close-up photo of a {}",
    "a close-up picture of the {}",
    "a cropped photo of a {}",
    "a bright photo of the {}",
    "a dark photo of a {}",
    "a blurry photo of the {}",
    "a clear photo of a {}",
    "a good photo of the {}",
    "a nice picture of a {}",
    "a photo of my {}",
    "a photo of one {}",
    "a photo of a small {}",
    "a photo of a big {}",
    "a snapshot of the {}",
    "a rendering of a {}",
    "a 3d rendering of the {}",
    "a photograph showing a {}",
    "a {} in a photo",
)

STYLE_TEMPLATES: tuple[str, ...] = (
    "a painting in the style of {}",
    "a picture in the style of {}",
    "an image in the style of {}",
    "a rendering in the style of {}",
    "an illustration in the style of {}",
    "a drawing in the style of {}",
    "a sketch in the style of {}",
    "a digital painting in the style of {}",
    "artwork in the style of {}",
    "a cropped painting in the style of {}",
    "a close-up painting in the style of {}",
    "a bright painting in the style of {}",
    "a dark painting in the style of {}",
    "a good painting in the style of {}",
    "a nice painting in the style of {}",
    "a small painting in the style of {}",
    "a large painting in the style of {}",
    "a landscape in the style of {}",
    "a portrait in the style of {}",
    "a scene painted in the style of {}",
    "a work of art in the style of {}",
)

# Prompts of the validation images written during training.
VALIDATION_PROMPTS = {
    "object": ("a photo of a {}", "a {} on a beach"),
    "style": ("a painting of a house in the style of {}", "a city street in the style of {}"),
}

KINDS = ("object", "style")


def templates(kind: str) -> tuple[str, ...]:
    """The caption templates of ``kind`` (``"object"`` or ``"style"``)."""
    if kind not in KINDS:
        raise UserError(f"concept kind must be 'object' or 'style', got {kind!r}")
    return OBJECT_TEMPLATES if kind == "object" else STYLE_TEMPLATES


def guess_kind(prompts: Sequence[str], token: str) -> str:
    """``"style"`` when a prompt uses the token as a style ("... in the style of <tok>"), else object."""
    pattern = re.compile(r"\bstyle\s+of\s+(?:an?\s+|the\s+)?" + re.escape(token), re.IGNORECASE)
    return "style" if any(pattern.search(p) for p in prompts) else "object"


def concept_images(folder: str | Path) -> list[torch.Tensor]:
    """Every image directly in ``folder`` as uint8 ``(3, H, W)``; a clear error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"concept image folder not found: {folder}")
    paths = list_images(folder)
    if not paths:
        raise UserError(f"{folder} holds no images (.png, .jpg, .jpeg, .bmp, .webp)")
    return [load_rgb(p) for p in paths]


@dataclass
class Augmentation:
    """How the training views of each image are made.

    ``views`` views per image: the whole image (its centred square, resized), its mirror
    when ``flip``, and random square crops whose side is a fraction in ``[crop_min, 1]``
    of the image's shorter side, mirrored with probability 1/2 when ``flip``. Turn
    ``flip`` off for concepts that must not be mirrored (text, asymmetric logos).
    """

    resolution: int = 512
    views: int = 16
    crop_min: float = 0.8
    flip: bool = True

    def check(self) -> None:
        if self.resolution < 8:
            raise ArgumentError(f"`resolution` must be at least 8, got {self.resolution}")
        if self.views < 1:
            raise ArgumentError(f"`views` must be >= 1, got {self.views}")
        if not 0.0 < self.crop_min <= 1.0:
            raise ArgumentError(f"`crop_min` must be in (0, 1], got {self.crop_min}")

    def count(self) -> int:
        """Distinct views per image: without cropping there are only the image and its mirror."""
        if self.crop_min >= 1.0:
            return min(self.views, 2 if self.flip else 1)
        return self.views


def augmented_views(images: Sequence[torch.Tensor], aug: Augmentation, seed: int = 0) -> torch.Tensor:
    """``len(images) * aug.count()`` float views in ``[-1, 1]``, ``(N, 3, R, R)``, image-major.

    Deterministic for a given ``seed`` (one CPU generator), so a resumed run trains on
    the same views.
    """
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    aug.check()
    g = torch.Generator().manual_seed(seed)
    r = aug.resolution
    out = []
    for image in images:
        _, h, w = image.shape
        short = min(h, w)
        for v in range(aug.count()):
            if v < (2 if aug.flip else 1):  # the whole image, then its mirror
                side, mirror = short, v == 1
                top, left = (h - side) // 2, (w - side) // 2
            else:
                frac = aug.crop_min + (1.0 - aug.crop_min) * float(torch.rand((), generator=g))
                side = max(1, round(frac * short))
                top = int(torch.randint(h - side + 1, (), generator=g))
                left = int(torch.randint(w - side + 1, (), generator=g))
                mirror = aug.flip and bool(torch.rand((), generator=g) < 0.5)
            view = TF.resized_crop(
                image, top, left, side, side, [r, r], interpolation=InterpolationMode.BICUBIC, antialias=True
            )
            if mirror:
                view = TF.horizontal_flip(view)
            out.append(view)
    return torch.stack(out).float() / 127.5 - 1.0


@torch.no_grad()
def encode_views(
    vae: torch.nn.Module, views: torch.Tensor, batch: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE posterior of each view: ``(mean, std)``, each ``(N, 4, R/8, R/8)`` fp32 on the CPU.

    Unscaled: multiply a sample by the model's ``scaling_factor`` (0.18215) before diffusion.
    Runs in the VAE's own dtype on its device, ``batch`` views at a time.
    """
    param = next(vae.parameters())
    means, stds = [], []
    for chunk in views.split(max(1, batch)):
        x = chunk.to(param.device, param.dtype)
        if param.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        posterior = vae.encode(x).latent_dist
        means.append(posterior.mean.float().cpu())
        stds.append(posterior.std.float().cpu())
    return torch.cat(means), torch.cat(stds)


def tokenize_captions(tokenizer, captions: Sequence[str]) -> torch.Tensor:
    """Token ids ``(N, 77)`` of ``captions``, padded like SD v1's text conditioning."""
    return tokenizer(
        list(captions),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
