"""``bash hw2_2.sh NOISE_DIR OUT_DIR UNET_PT`` as a user runs it, and its one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ..conftest import run_script


def test_hw2_2_writes_one_png_per_noise(face_files, tmp_path):
    out = tmp_path / "out"
    result = run_script("hw2_2.sh", str(face_files["noise_dir"]), str(out), str(face_files["unet"]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote 4 images to {out}"
    assert sorted(p.name for p in out.iterdir()) == ["00.png", "01.png", "02.png", "03.png"]
    for path in out.iterdir():  # the values themselves: tests/faces/test_ddim.py
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (32, 32, 3) and pixels.min() == 0 and pixels.max() == 255


def _bad_noise_dir(root):
    folder = root / "bad_noise"
    folder.mkdir()
    torch.save(torch.zeros(1, 3, 30, 30), folder / "00.pt")
    return folder


def _bad_unet(root):
    path = root / "wrong.pt"
    torch.save({"down1.weight": torch.zeros(8, 3, 3, 3), "down1.bias": torch.zeros(8)}, path)
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_dir", "error: noise folder not found: {root}/nowhere"),
        (
            "malformed_noise",
            "error: noise file {root}/bad_noise/00.pt has shape (1, 3, 30, 30): "
            "height and width must divide by 32",
        ),
        ("unfit_state_dict", "error: {root}/wrong.pt does not fit the face UNet (width 8): "),
    ],
)
def test_bad_inputs_give_one_line_and_exit_2(face_files, tmp_path, case, message):
    noise_dir, unet = str(face_files["noise_dir"]), str(face_files["unet"])
    if case == "missing_dir":
        noise_dir = str(tmp_path / "nowhere")
    elif case == "malformed_noise":
        noise_dir = str(_bad_noise_dir(tmp_path))
    else:
        unet = str(_bad_unet(tmp_path))
    result = run_script("hw2_2.sh", noise_dir, str(tmp_path / "out"), unet)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(root=tmp_path)), lines
    assert not (tmp_path / "out").exists()


def test_usage_line_without_three_arguments():
    result = run_script("hw2_2.sh", "only_one")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: bash hw2_2.sh NOISE_DIR OUT_DIR UNET_PT")
