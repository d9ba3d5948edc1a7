"""Tests for the procedural stand-in digits (dlcv.data.synthetic_digits)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import UserError
from dlcv.data import digits as dg
from dlcv.data import synthetic_digits as sd

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sd.write_synthetic_digits(tmp_path_factory.mktemp("syn"), 30, 10, seed=3, progress=False)


def test_layout_header_counts_and_names(written: Path) -> None:
    for name in dg.DATASETS:
        folder = written / name
        assert sorted(p.name for p in folder.iterdir()) == ["data", "test.csv", "train.csv"]
        train = (folder / "train.csv").read_text().splitlines()
        test = (folder / "test.csv").read_text().splitlines()
        assert train[0] == test[0] == "image_name,label"
        assert len(train) == 31 and len(test) == 11
        names = [row.split(",")[0] for row in train[1:] + test[1:]]
        assert names == [f"{i:05d}.png" for i in range(40)]
        assert sorted(p.name for p in (folder / "data").iterdir()) == names
        with Image.open(folder / "data" / "00007.png") as im:
            assert im.size == (28, 28) and im.mode == "RGB"


def test_labels_are_balanced(written: Path) -> None:
    for name in dg.DATASETS:
        train = dg.load_digit_split(written, name, "train", progress=False)
        test = dg.load_digit_split(written, name, "test", progress=False)
        assert torch.bincount(train.digits, minlength=10).tolist() == [3] * 10
        assert torch.bincount(test.digits, minlength=10).tolist() == [1] * 10
        assert train.images.shape == (30, 3, 28, 28)


def test_same_seed_same_bytes_other_seed_differs(written: Path, tmp_path: Path) -> None:
    again = sd.write_synthetic_digits(tmp_path / "a", 30, 10, seed=3, progress=False)
    assert _files(again) == _files(written)
    other = sd.write_synthetic_digits(tmp_path / "b", 30, 10, seed=4, progress=False)
    assert _files(other)["svhn/data/00000.png"] != _files(written)["svhn/data/00000.png"]


def test_refuses_to_overwrite_and_keeps_unrelated_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    sd.write_synthetic_digits(tmp_path, 10, 0, progress=False)
    assert not (tmp_path / "mnistm" / "test.csv").exists()
    with pytest.raises(UserError, match="--overwrite"):
        sd.write_synthetic_digits(tmp_path, 10, 0, progress=False)
    sd.write_synthetic_digits(tmp_path, 20, 0, seed=1, progress=False, overwrite=True)
    assert len((tmp_path / "svhn" / "train.csv").read_text().splitlines()) == 21
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_writes_and_refuses(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "dlcv.data.synthetic_digits",
        "--out",
        str(tmp_path),
        "--train",
        "10",
        "--test",
        "10",
        "--quiet",
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "mnistm" in done.stdout and "svhn" in done.stdout
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2
    assert again.stderr.startswith("error:") and "--overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("render", [sd.render_mnistm_style, sd.render_svhn_style])
def test_render_shape_and_input_check(render) -> None:
    images = render([0, 5, 9], np.random.default_rng(0))
    assert images.shape == (3, 28, 28, 3) and images.dtype == np.uint8
    assert images.reshape(3, -1).std(axis=1).min() > 10  # not blank
    with pytest.raises(ValueError):
        render([10], np.random.default_rng(0))


@pytest.mark.parametrize("render", [sd.render_mnistm_style, sd.render_svhn_style])
def test_masks_come_with_the_same_images_and_cover_the_centred_digit(render) -> None:
    digits = [1, 8, 7, 0]
    images = render(digits, np.random.default_rng(5))
    again, masks = render(digits, np.random.default_rng(5), return_masks=True)
    assert np.array_equal(images, again)  # asking for the masks draws nothing more
    assert masks.shape == (4, 28, 28) and masks.min() >= 0 and masks.max() <= 1
    ink = masks > 0.5
    assert ink[:, :, :3].sum() == 0 and ink[:, :, -3:].sum() == 0  # no neighbour at the edges
    assert ink[1].sum() > ink[0].sum() and ink[:, 10:18, 10:18].any(axis=(1, 2)).sum() >= 3


def test_luma_guard_keeps_texture_off_mid_grey() -> None:
    rng = np.random.default_rng(0)
    patch = rng.uniform(0, 255, (4, 28, 28, 3))
    side = np.array([1.0, -1.0, 1.0, -1.0])[:, None, None] * np.ones((4, 28, 28))
    out = sd._luma_guard(patch, side, np.full(4, 40.0))
    luma = sd._luma(out)
    assert out.min() >= -1e-6 and out.max() <= 255 + 1e-6
    assert (side * (luma - 127.5)).min() >= 40 - 1e-6


def _edge_features(images: np.ndarray) -> torch.Tensor:
    """Polarity-free features: pooled gradient magnitudes of the grey image, unit length."""
    x = torch.from_numpy(images).float().mean(-1)
    g = torch.zeros_like(x)
    g[:, :, :-1] += (x[:, :, 1:] - x[:, :, :-1]).abs()
    g[:, :-1, :] += (x[:, 1:, :] - x[:, :-1, :]).abs()
    g = torch.nn.functional.avg_pool2d(g[:, None], 2).flatten(1)
    return g / g.norm(dim=1, keepdim=True).clamp_min(1e-6)


@pytest.mark.parametrize("render", [sd.render_mnistm_style, sd.render_svhn_style])
def test_digits_are_separable_by_a_linear_classifier(render) -> None:
    """A ridge-regression classifier on edge features must be far above chance (10%)."""
    rng = np.random.default_rng(0)
    y_train, y_test = np.repeat(np.arange(10), 40), np.repeat(np.arange(10), 20)
    f_train, f_test = _edge_features(render(y_train, rng)), _edge_features(render(y_test, rng))
    x = torch.cat([f_train, torch.ones(len(f_train), 1)], 1).double()
    target = torch.nn.functional.one_hot(torch.from_numpy(y_train), 10).double()
    w = torch.linalg.solve(x.T @ x + torch.eye(x.shape[1], dtype=torch.double), x.T @ target)
    pred = (torch.cat([f_test, torch.ones(len(f_test), 1)], 1).double() @ w).argmax(1)
    accuracy = (pred == torch.from_numpy(y_test)).double().mean().item()
    assert accuracy > 0.5
