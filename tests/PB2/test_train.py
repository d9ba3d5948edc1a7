"""``PB2/train.py``: a few steps on a tiny width lower the loss and leave a UNet.pt that hw2_2 loads."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import UserError
from dlcv.diffusion import NoiseSchedule, diffusion_loss
from dlcv.faces.ddim import load_face_unet
from dlcv.faces.unet import FaceUNet
from dlcv.io.checkpoint import load_checkpoint
from dlcv.runtime import seed_everything

from ..conftest import REPO, run_script


def entry():
    spec = importlib.util.spec_from_file_location("pb2_train", REPO / "PB2" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Six 40x40 'faces': smooth colour gradients, resized to 32x32 by the script."""
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
    module = entry()
    out = tmp_path / "run"
    argv = ["--data", str(faces), "--out", str(out), "--image-size", "32", "--width", "8", "--steps", "20",
            "--batch-size", "6", "--lr", "3e-3", "--warmup", "0", "--ema", "0", "--dropout", "0",
            "--sample-steps", "2", "--log-every", "10", "--ckpt-every", "0", "--device", "cpu"]  # fmt: skip
    module.main(argv)

    seed_everything(0)  # the script's initial weights for --seed 0
    initial = FaceUNet(8, dropout=0.0).eval()
    trained = load_face_unet(out / "unet.pt")  # weights_only, strict, the width read from the file
    assert trained.base_channels == 8
    x0 = module.load_image_folder(faces, 32).float() / 127.5 - 1.0
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
        module.main(argv)  # never overwrites a run silently
    module.main([*argv[:9], "22", *argv[10:], "--resume"])  # --steps 20 -> 22
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 22


def test_bad_inputs(faces, tmp_path):
    out = str(tmp_path / "o")
    result = run_script("PB2/train.py", "--data", str(faces), "--out", out, "--image-size", "40")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["error: --image-size must be a positive multiple of 32"]
    main = entry().main
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["--out", str(tmp_path / "o"), "--device", "cpu"]
    cases = [
        (["--data", str(tmp_path / "none"), *base], "--data folder not found"),
        (["--data", str(empty), *base], "contains no images"),
        (["--data", str(faces), *base, "--width", "0"], "--width must be a positive even number"),
        (["--data", str(faces), *base, "--steps", "0"], "--steps must be positive, got 0"),
        (["--data", str(faces), *base, "--ema", "1"], "--ema must be in [0, 1)"),
        (["--data", str(faces), *base, "--log-every", "0"], "--log-every must be positive"),
        (["--data", str(faces), *base, "--width", "7"], "--width"),
    ]
    for argv, message in cases:
        with pytest.raises(UserError) as err:
            main(argv)
        assert message in str(err.value), argv
    assert not (tmp_path / "o").exists()
