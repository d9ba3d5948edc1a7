"""CLIP's image preprocessing and batched encoding of image files.

The transform is the one OpenAI's CLIP was trained and evaluated with (Radford et al.,
2021; ``clip.clip._transform``): resize the shorter side to the model's input size with
PIL's bicubic filter, centre-crop a square, scale to [0, 1], normalise with CLIP's
per-channel mean and standard deviation. It is the only image preprocessing in
:mod:`dlcv.clip_eval`; the input size comes from the loaded model's config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dlcv.cli import UserError
from dlcv.io.images import load_rgb

if TYPE_CHECKING:
    from dlcv.clip_eval.loading import ClipModel

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_transform(size: int) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> normalised float ``(3, size, size)`` tensor, as CLIP expects."""
    from torchvision.transforms import v2  # imported here: torchvision takes a second to import

    return v2.Compose(
        [
            v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC),
            v2.CenterCrop(size),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )


def open_pil(path: str | Path) -> Image.Image:
    """Read an image file as an RGB PIL image; an unreadable file raises UserError naming it."""
    array = load_rgb(path).permute(1, 2, 0).numpy()
    return Image.fromarray(array)


class ImageFiles(Dataset):
    """Image files -> ``(pixels, error)``; ``error`` is "" or the message for an unreadable file.

    Errors travel back as strings so that a DataLoader worker never raises: the caller
    turns the first one into a one-line :class:`UserError`.
    """

    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths = list(paths)
        self.size = size
        self.transform = clip_transform(size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        try:
            image = open_pil(self.paths[index])
        except UserError as err:
            return torch.zeros(3, self.size, self.size), str(err)
        return self.transform(image), ""


def encode_image_files(
    clip: ClipModel,
    paths: Sequence[Path],
    batch_size: int = 128,
    workers: int = 0,
    desc: str | None = None,
) -> torch.Tensor:
    """Unit-norm CLIP image embeddings ``(N, D)`` (float32, on the model's device) of ``paths``.

    Images are decoded and preprocessed in ``workers`` DataLoader processes and encoded
    in batches of ``batch_size``; a progress bar is shown when ``desc`` is given.
    """
    if not paths:
        raise UserError("no images to encode")
    loader = DataLoader(
        ImageFiles(paths, clip.image_size),
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=clip.device.type == "cuda",
    )
    features = []
    for pixels, errors in tqdm(loader, desc=desc, disable=desc is None, unit="batch"):
        for message in errors:
            if message:
                raise UserError(message)
        features.append(clip.encode_images(pixels))
    return torch.cat(features)
