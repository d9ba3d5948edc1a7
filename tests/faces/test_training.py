"""``dlcv.faces.training``: a few steps on a tiny width lower the loss and leave a UNet.pt that
hw2_2 loads; bad settings are refused before the images are read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import ArgumentError, UserError
from dlcv.diffusion import NoiseSchedule, diffusion_loss
from dlcv.faces.ddim import load_face_unet
from dlcv.faces.training import FaceTrainJob, load_image_folder, train_faces
from dlcv.faces.unet import FaceUNet
from dlcv.io.checkpoint import load_checkpoint
from dlcv.runtime import seed_everything


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Six 40x40 'faces': smooth colour gradients, resized to 32x32 by the job."""
    folder = tmp_path_factory.mktemp("faces")
    ramp = np.linspace(0, 1, 40)
    for i in range(6):
        colour = np.array([(i * 40) % 256, 255 - i * 30, 80 + i * 20])
        image = ramp[:, None, None] * ramp[None, :, None] * colour
        Image.fromarray(image.astype(np.uint8)).save(folder / f"{i}.png")
    (folder / "readme.txt").write_text("not an image")
    return folder


def fixed_batch_loss(model: torch.nn.Module, x0: torch.Tensor) -> float:
    schedule = NoiseSchedule.linear()
    with torch.no_grad():
        draws = [torch.Generator().manual_seed(k) for k in range(6)]
        losses = [float(diffusion_loss(model, x0, schedule, g)) for g in draws]
    return sum(losses) / len(losses)


def test_a_few_steps_lower_the_loss_and_save_a_loadable_state_dict(faces, tmp_path):
    out = tmp_path / "run"
    settings = dict(
        data=str(faces),
        out=str(out),
        image_size=32,
        width=8,
        steps=20,
        batch_size=6,
        lr=3e-3,
        warmup=0,
        ema=0,
        dropout=0,
        sample_steps=2,
        log_every=10,
        ckpt_every=0,
        device="cpu",
    )
    assert train_faces(FaceTrainJob(**settings)) == out / "unet.pt"

    seed_everything(0)  # the job's initial weights for seed 0
    initial = FaceUNet(8, dropout=0.0).eval()
    trained = load_face_unet(out / "unet.pt")  # weights_only, strict, the width read from the file
    assert trained.base_channels == 8
    x0 = load_image_folder(faces, 32).float() / 127.5 - 1.0
    assert x0.shape == (6, 3, 32, 32)
    before, after = fixed_batch_loss(initial, x0), fixed_batch_loss(trained, x0)
    print(f"fixed-batch loss {before:.3f} -> {after:.3f}")
    assert after < 0.8 * before, (before, after)

    same = load_face_unet(out / "unet.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), same.state_dict().values()))
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 20
    assert (out / "samples" / "step_0000020.png").is_file()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2

    with pytest.raises(UserError, match="`resume`"):
        train_faces(FaceTrainJob(**settings))  # never overwrites a run silently
    train_faces(FaceTrainJob(**{**settings, "steps": 22}, resume=True))
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 22


def test_the_length_defaults_to_100000_steps_or_the_time_budget_alone(faces):
    assert FaceTrainJob(str(faces)).train_config().steps == 100_000
    cfg = FaceTrainJob(str(faces), time_budget=60).train_config()
    assert (cfg.steps, cfg.time_budget, cfg.ema_decay) == (None, 60, 0.9999)
    assert FaceTrainJob(str(faces), ema=0, precision="fp32").train_config().ema_decay is None


def test_bad_settings_are_refused_before_the_images_are_read(faces, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    base = {"out": str(tmp_path / "o"), "device": "cpu"}
    cases = [
        ({"data": str(tmp_path / "none")}, UserError, "--data folder not found"),
        ({"data": str(empty)}, UserError, "contains no images"),
        ({"data": str(faces), "width": 0}, ArgumentError, "`width` must be a positive even number"),
        ({"data": str(faces), "width": 7}, ArgumentError, "`width`"),
        ({"data": str(faces), "image_size": 40}, ArgumentError, "`image_size` must be a positive multiple"),
        ({"data": str(faces), "dropout": 1.0}, ArgumentError, r"`dropout` must be in \[0, 1\)"),
        ({"data": str(faces), "steps": 0}, ArgumentError, "`steps` must be >= 1, got 0"),
        ({"data": str(faces), "ema": 1.0}, ArgumentError, r"`ema_decay` must be in \[0, 1\)"),
        ({"data": str(faces), "log_every": 0}, ArgumentError, "`log_every` must be >= 1"),
        ({"data": str(empty), "time_budget": float("nan")}, ArgumentError, "`time_budget` must be a pos"),
        ({"data": str(empty), "lr": float("nan")}, ArgumentError, "`lr` must be a positive number"),
    ]
    for settings, kind, message in cases:
        with pytest.raises(kind, match=message):
            train_faces(FaceTrainJob(**base, **settings))
    assert not (tmp_path / "o").exists()
