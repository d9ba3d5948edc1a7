"""Problem 2 fixtures: a tiny random face UNet.pt with four 32x32 noises, and a tiny PB1 model file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dlcv.faces.unet import FaceUNet


@pytest.fixture(scope="session")
def face_files(tmp_path_factory) -> dict[str, Path]:
    """``unet``: a width-8 random FaceUNet state dict; ``noise_dir``: 00.pt .. 03.pt of (1, 3, 32, 32)."""
    root = tmp_path_factory.mktemp("pb2_face")
    torch.manual_seed(0)
    model = FaceUNet(8)
    with torch.no_grad():  # a small output layer: a non-chaotic DDIM trajectory (tests/faces/test_ddim.py)
        model.out[2].weight.mul_(0.005)
        model.out[2].bias.mul_(0.005)
    unet = root / "UNet.pt"
    torch.save(model.state_dict(), unet)
    noise_dir = root / "noise"
    noise_dir.mkdir()
    noises = torch.randn(4, 1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for i, noise in enumerate(noises):
        torch.save(noise.clone(), noise_dir / f"{i:02d}.pt")
    return {"root": root, "unet": unet, "noise_dir": noise_dir}


@pytest.fixture(scope="session")
def digit_model_file(tmp_path_factory) -> Path:
    """A randomly initialised PB1 model of the ``tiny`` preset, exported as PB1/train.py does."""
    from dlcv.digits.model import build_model, export_model, load_config

    cfg = load_config("tiny")
    torch.manual_seed(0)
    return export_model(build_model(cfg), tmp_path_factory.mktemp("pb2_digit"), cfg)
