"""Reader for the course's digit data (Problem 1): MNIST-M and SVHN.

Layout (``ROOT`` is e.g. ``hw2_data/digits``)::

    ROOT/mnistm/data/*.png   28x28 RGB           ROOT/mnistm/train.csv  (image_name,label)
    ROOT/svhn/data/*.png     28x28 or 32x32      ROOT/svhn/train.csv
                             (older releases also carry val.csv / test.csv)

A split is decoded once into a contiguous uint8 tensor ``(N, 3, size, size)`` by a
thread pool; repeated loads in one process come from a small in-memory cache.
The two datasets share one label space for the conditional model:
``joint = domain * 10 + digit`` with ``domain`` the position in :data:`DATASETS`.
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from dlcv.cli import ArgumentError, UserError
from dlcv.io.images import open_image

DATASETS: tuple[str, ...] = ("mnistm", "svhn")
NUM_DIGITS = 10
NUM_CLASSES = len(DATASETS) * NUM_DIGITS
HEADER = ("image_name", "label")

_CACHE: dict[tuple, DigitSplit] = {}
_CACHE_MAX = 8


def joint_label(domain: int | Tensor, digit: int | Tensor) -> int | Tensor:
    """The joint class ``domain * 10 + digit`` (0-19) used by the conditional model."""
    if isinstance(domain, int) and isinstance(digit, int):
        if not (0 <= domain < len(DATASETS) and 0 <= digit < NUM_DIGITS):
            raise ValueError(f"domain must be 0-{len(DATASETS) - 1} and digit 0-9, got {domain}, {digit}")
    return domain * NUM_DIGITS + digit


def split_joint(label: int | Tensor) -> tuple[int | Tensor, int | Tensor]:
    """Inverse of :func:`joint_label`: ``(domain, digit)``."""
    if isinstance(label, Tensor):
        return torch.div(label, NUM_DIGITS, rounding_mode="floor"), label % NUM_DIGITS
    return divmod(int(label), NUM_DIGITS)


@dataclass
class DigitSplit:
    """One split of one dataset, fully in memory."""

    images: Tensor  # uint8 (N, 3, size, size), contiguous
    digits: Tensor  # int64 (N,), 0-9
    names: list[str]  # image file names as written in the CSV

    def __len__(self) -> int:
        return len(self.names)


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise UserError(f"unknown digits dataset {dataset!r}; expected one of {', '.join(DATASETS)}")


def _dataset_dir(root: str | Path, dataset: str) -> Path:
    """``root/dataset``, also accepting the ``hw2_data`` folder itself (``root/digits/dataset``)."""
    _check_dataset(dataset)
    root = Path(root)
    folder = root / dataset
    if not folder.is_dir() and (root / "digits" / dataset).is_dir():
        folder = root / "digits" / dataset
    if not folder.is_dir():
        raise UserError(
            f"digits dataset folder not found: {folder} (expected {folder}/data/*.png and {folder}/train.csv)"
        )
    return folder


def available_splits(root: str | Path, dataset: str) -> list[str]:
    """The splits of ``dataset`` under ``root`` that have a CSV, sorted (``["test", "train"]``)."""
    folder = _dataset_dir(root, dataset)
    return sorted(p.stem for p in folder.glob("*.csv") if p.is_file())


def _read_csv(path: Path) -> tuple[list[str], list[int]]:
    """Image names and digit labels of a course CSV, validated."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    header = tuple(c.strip() for c in rows[0]) if rows else ()
    if header[:2] != HEADER:
        raise UserError(
            f"{path}: expected the header 'image_name,label', got {','.join(header) or 'an empty file'!r}"
        )
    names, labels = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 2:
            raise UserError(f"{path}: line {line}: expected 'image_name,label', got {row!r}")
        name, label = row[0].strip(), row[1].strip()
        if not name:
            raise UserError(f"{path}: line {line}: empty image_name")
        try:
            value = int(label)
        except ValueError:
            value = -1
        if not 0 <= value <= 9:
            raise UserError(f"{path}: line {line}: label must be an integer 0-9, got {label!r} for {name}")
        names.append(name)
        labels.append(value)
    if not names:
        raise UserError(f"{path} lists no images")
    return names, labels


def _decode(path: Path, size: int, csv_path: Path, out: np.ndarray) -> None:
    """Decode one image into ``out`` ``(size, size, 3)``, resizing (bicubic) only if needed."""
    if not path.is_file():
        raise UserError(f"image listed in {csv_path} not found: {path}")
    try:
        with open_image(path) as im:
            if im.mode != "RGB":
                im = im.convert("RGB")  # greyscale, palette, RGBA (alpha dropped)
            if im.size != (size, size):
                im = im.resize((size, size), Image.BICUBIC)
            out[...] = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def _decode_all(paths: list[Path], size: int, csv_path: Path, desc: str, progress: bool) -> np.ndarray:
    array = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    chunk = 256
    workers = min(8, (os.cpu_count() or 1) + 2)

    def work(lo: int) -> int:
        hi = min(len(paths), lo + chunk)
        for i in range(lo, hi):
            _decode(paths[i], size, csv_path, array[i])
        return hi - lo

    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(paths), desc=desc, unit="img", disable=not progress) as bar,
    ):
        futures = [pool.submit(work, lo) for lo in range(0, len(paths), chunk)]
        try:
            for fut in as_completed(futures):
                bar.update(fut.result())
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return array


def load_digit_split(
    root: str | Path,
    dataset: str,
    split: str = "train",
    size: int = 28,
    limit: int | None = None,
    progress: bool = True,
) -> DigitSplit:
    """Load ``root/dataset/{split}.csv`` and its images into memory.

    Images are RGB-converted and resized to ``size`` (PIL bicubic) when their size
    differs; ``limit`` keeps the first rows of the CSV. Any problem (missing folder or
    CSV, bad header or label, missing or unreadable image) raises :class:`UserError`
    naming it. Repeated calls with the same arguments reuse a cached copy (invalidated
    when the CSV changes).
    """
    folder = _dataset_dir(root, dataset)
    if size < 1:
        raise UserError(f"image size must be positive, got {size}")
    if limit is not None and limit < 1:
        raise ArgumentError(f"`limit` must be a positive number of images per dataset, got {limit}")
    csv_path = folder / f"{split}.csv"
    if not csv_path.is_file():
        have = available_splits(root, dataset)
        raise UserError(
            f"split {split!r} of {dataset} not found: {csv_path} (available: "
            f"{', '.join(have) or 'no CSV files'})"
        )
    stat = csv_path.stat()
    key = (str(csv_path.resolve()), stat.st_mtime_ns, stat.st_size, size, limit)
    if key in _CACHE:
        hit = _CACHE[key]
        return DigitSplit(hit.images.clone(), hit.digits.clone(), list(hit.names))
    names, labels = _read_csv(csv_path)
    if limit is not None:
        names, labels = names[:limit], labels[:limit]
    array = _decode_all([folder / "data" / n for n in names], size, csv_path, f"{dataset} {split}", progress)
    images = torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
    result = DigitSplit(images, torch.tensor(labels, dtype=torch.int64), names)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = result
    return DigitSplit(images.clone(), result.digits.clone(), list(names))


def load_joint_digits(
    root: str | Path,
    split: str = "train",
    size: int = 28,
    limit_per_dataset: int | None = None,
    progress: bool = True,
) -> tuple[Tensor, Tensor]:
    """Both datasets' ``split`` concatenated: uint8 images ``(N, 3, size, size)`` and joint
    labels ``domain * 10 + digit`` (int64 ``(N,)``), datasets in :data:`DATASETS` order."""
    images, labels = [], []
    for domain, name in enumerate(DATASETS):
        part = load_digit_split(root, name, split, size, limit_per_dataset, progress)
        images.append(part.images)
        labels.append(joint_label(domain, part.digits))
    return torch.cat(images).contiguous(), torch.cat(labels)
