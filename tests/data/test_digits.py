"""Tests for the course digit reader (dlcv.data.digits) on small temporary trees."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import UserError
from dlcv.data import digits as dg


def _write_split(
    folder: Path, split: str, labels: list[int], size: int = 28, start: int = 0, mode: str = "RGB"
) -> list[str]:
    """Write ``labels`` as images ``folder/data/NNNNN.png`` plus ``folder/{split}.csv``."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    names = []
    for i, label in enumerate(labels):
        name = f"{start + i:05d}.png"
        array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        array[0, 0] = label  # lets the test check rows and images stay paired
        Image.fromarray(array).convert(mode).save(folder / "data" / name)
        names.append(name)
    lines = ["image_name,label"] + [f"{n},{d}" for n, d in zip(names, labels, strict=True)]
    (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return names


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """A course-like tree: mnistm 28x28 (train/test), svhn 32x32 (train)."""
    dg._CACHE.clear()
    _write_split(tmp_path / "mnistm", "train", [3, 1, 4, 1, 5, 9])
    _write_split(tmp_path / "mnistm", "test", [2, 7], start=6)
    _write_split(tmp_path / "svhn", "train", [0, 8, 8, 2], size=32)
    return tmp_path


def test_load_split_shapes_labels_and_names(tree: Path) -> None:
    split = dg.load_digit_split(tree, "mnistm", "train", progress=False)
    assert len(split) == 6
    assert split.images.shape == (6, 3, 28, 28)
    assert split.images.dtype == torch.uint8 and split.images.is_contiguous()
    assert split.digits.dtype == torch.int64
    assert split.digits.tolist() == [3, 1, 4, 1, 5, 9]
    assert split.names == [f"{i:05d}.png" for i in range(6)]
    expected = np.array(Image.open(tree / "mnistm" / "data" / "00002.png"))
    assert torch.equal(split.images[2], torch.from_numpy(expected).permute(2, 0, 1))


def test_32px_images_are_resized_bicubic(tree: Path) -> None:
    split = dg.load_digit_split(tree, "svhn", progress=False)
    assert split.images.shape == (4, 3, 28, 28)
    with Image.open(tree / "svhn" / "data" / "00001.png") as im:
        assert im.size == (32, 32)
        expected = np.array(im.convert("RGB").resize((28, 28), Image.BICUBIC))
    assert torch.equal(split.images[1], torch.from_numpy(expected).permute(2, 0, 1))
    assert dg.load_digit_split(tree, "svhn", size=32, progress=False).images.shape[-1] == 32


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_non_rgb_images_become_rgb(tmp_path: Path, mode: str) -> None:
    _write_split(tmp_path / "mnistm", "train", [1, 2], mode=mode)
    split = dg.load_digit_split(tmp_path, "mnistm", progress=False)
    assert split.images.shape == (2, 3, 28, 28)
    if mode == "L":
        assert torch.equal(split.images[:, 0], split.images[:, 2])


def test_limit_keeps_first_rows(tree: Path) -> None:
    split = dg.load_digit_split(tree, "mnistm", limit=3, progress=False)
    assert split.digits.tolist() == [3, 1, 4] and len(split.names) == 3


def test_joint_labels_and_concatenation(tree: Path) -> None:
    images, labels = dg.load_joint_digits(tree, "train", progress=False)
    assert images.shape == (10, 3, 28, 28) and images.dtype == torch.uint8
    assert labels.tolist() == [3, 1, 4, 1, 5, 9, 10, 18, 18, 12]
    domain, digit = dg.split_joint(labels)
    assert domain.tolist() == [0] * 6 + [1] * 4
    assert digit.tolist() == [3, 1, 4, 1, 5, 9, 0, 8, 8, 2]
    images, labels = dg.load_joint_digits(tree, "train", limit_per_dataset=2, progress=False)
    assert labels.tolist() == [3, 1, 10, 18]


def test_joint_label_round_trip() -> None:
    assert dg.NUM_CLASSES == 20 and dg.DATASETS == ("mnistm", "svhn")
    assert dg.joint_label(1, 7) == 17 and dg.split_joint(17) == (1, 7)
    labels = torch.arange(20)
    domain, digit = dg.split_joint(labels)
    assert torch.equal(dg.joint_label(domain, digit), labels)
    with pytest.raises(ValueError):
        dg.joint_label(2, 0)


def test_available_splits(tree: Path) -> None:
    assert dg.available_splits(tree, "mnistm") == ["test", "train"]
    assert dg.available_splits(tree, "svhn") == ["train"]


def test_hw2_data_root_is_accepted(tmp_path: Path) -> None:
    _write_split(tmp_path / "digits" / "svhn", "train", [4])
    assert dg.load_digit_split(tmp_path, "svhn", progress=False).digits.tolist() == [4]


def test_cache_returns_copies_and_notices_csv_changes(tree: Path) -> None:
    first = dg.load_digit_split(tree, "mnistm", progress=False)
    first.images.zero_()
    second = dg.load_digit_split(tree, "mnistm", progress=False)
    assert second.images.any()
    csv_path = tree / "mnistm" / "train.csv"
    csv_path.write_text("image_name,label\n00000.png,7\n")
    stat = csv_path.stat()
    os.utime(csv_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert dg.load_digit_split(tree, "mnistm", progress=False).digits.tolist() == [7]


# --------------------------------------------------------------------------- errors


def _error(tree: Path, dataset: str = "mnistm", split: str = "train") -> str:
    dg._CACHE.clear()
    with pytest.raises(UserError) as info:
        dg.load_digit_split(tree, dataset, split, progress=False)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_dataset(tree: Path) -> None:
    assert "'usps'" in _error(tree, "usps")
    with pytest.raises(UserError, match="usps"):
        dg.available_splits(tree, "usps")


def test_missing_dataset_folder(tmp_path: Path) -> None:
    assert str(tmp_path / "svhn") in _error(tmp_path, "svhn")


def test_missing_csv_lists_available_splits(tree: Path) -> None:
    message = _error(tree, "mnistm", "val")
    assert "val.csv" in message and "test, train" in message


def test_bad_header(tree: Path) -> None:
    (tree / "mnistm" / "train.csv").write_text("file,digit\n00000.png,3\n")
    message = _error(tree)
    assert "train.csv" in message and "image_name,label" in message


@pytest.mark.parametrize("label", ["x", "12", "-1", "3.5", ""])
def test_bad_label_names_file_and_row(tree: Path, label: str) -> None:
    (tree / "mnistm" / "train.csv").write_text(f"image_name,label\n00000.png,3\n00001.png,{label}\n")
    message = _error(tree)
    assert "train.csv" in message and "line 3" in message and "00001.png" in message


def test_empty_csv(tree: Path) -> None:
    (tree / "mnistm" / "train.csv").write_text("image_name,label\n")
    assert "no images" in _error(tree)


def test_missing_image_is_named(tree: Path) -> None:
    (tree / "mnistm" / "data" / "00004.png").unlink()
    assert "00004.png" in _error(tree)


@pytest.mark.parametrize("broken", ["garbage", "truncated"])
def test_unreadable_image_is_named(tree: Path, broken: str) -> None:
    path = tree / "mnistm" / "data" / "00002.png"
    path.write_bytes(b"not a png" if broken == "garbage" else path.read_bytes()[:100])
    assert "00002.png" in _error(tree)
