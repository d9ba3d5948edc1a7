"""Problem 2's grading measure on arrays whose MSE is known by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import UserError
from dlcv.faces.mse import PASS_LINE, MseReport, compare_folders, image_mse


def save(folder, name, array) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(folder / name)


def test_image_mse_is_on_the_0_255_scale_without_uint8_wrap_around():
    a = torch.zeros(3, 2, 2, dtype=torch.uint8)
    b = torch.full((3, 2, 2), 4, dtype=torch.uint8)
    assert image_mse(a, b) == 16.0
    assert image_mse(b, a) == 16.0  # 0 - 4 in uint8 would wrap to 252
    c = a.clone()
    c[0, 0, 0] = 255
    assert image_mse(a, c) == pytest.approx(255**2 / 12)
    with pytest.raises(ValueError, match="shapes differ"):
        image_mse(a, torch.zeros(3, 2, 3, dtype=torch.uint8))


def test_folders_matched_by_name_with_per_image_and_mean(tmp_path):
    gt, out = tmp_path / "gt", tmp_path / "out"
    base = np.random.default_rng(0).integers(10, 240, size=(8, 8, 3))
    save(gt, "00.png", base)
    save(out, "00.png", base)  # identical: 0
    save(gt, "01.png", base)
    save(out, "01.png", base + 3)  # off by 3 everywhere: 9
    grey = np.full((8, 8), 100)
    save(gt, "02.png", np.stack([grey] * 3, -1))
    save(out, "02.png", grey + 6)  # a greyscale PNG is compared as RGB: 36
    save(out, "extra.png", base)
    report = compare_folders(out, gt)
    assert report.per_image == {"00.png": 0.0, "01.png": 9.0, "02.png": 36.0}
    assert report.mean == 15.0 and report.passed and report.ignored == ["extra.png"]
    lines = report.lines()
    assert len(lines) == 4 and lines[1].split() == ["01.png", "9.0000"]
    assert lines[-1].startswith("mean") and "15.0000" in lines[-1] and "PASS" in lines[-1]
    assert "mean < 20" in lines[-1]


def test_pass_line_is_the_courses_strict_20():
    assert PASS_LINE == 20.0
    assert not MseReport({"a.png": 20.0}).passed
    assert MseReport({"a.png": 19.99}).passed
    assert "FAIL" in MseReport({"a.png": 30.0, "b.png": 12.0}).lines()[-1]


def test_mismatches_are_reported_clearly(tmp_path):
    gt, out = tmp_path / "gt", tmp_path / "out"
    img = np.zeros((8, 8, 3))
    save(gt, "00.png", img)
    save(gt, "01.png", img)
    save(out, "00.png", np.zeros((8, 16, 3)))
    with pytest.raises(UserError, match=r"1 of the 2 ground-truth images .* in .*out: 01.png"):
        compare_folders(out, gt)
    save(out, "01.png", img)
    with pytest.raises(UserError, match=r"00.png: size 16x8 in .* but 8x8 in"):
        compare_folders(out, gt)
    with pytest.raises(UserError, match="output folder not found"):
        compare_folders(tmp_path / "none", gt)
    with pytest.raises(UserError, match="contains no images"):
        compare_folders(out, tmp_path)
    (out / "00.png").write_bytes(b"broken")
    with pytest.raises(UserError, match="cannot read image"):
        compare_folders(out, gt)
