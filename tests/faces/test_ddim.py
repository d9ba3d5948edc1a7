"""Problem 2's DDIM path against diffusers' DDIMScheduler, the PNG convention and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import UserError
from dlcv.diffusion import NoiseSchedule, ddim_timesteps
from dlcv.diffusion.driver import constant_eps, sample_batches
from dlcv.diffusion.reference import course_ddim_scheduler
from dlcv.faces.ddim import (
    face_precision,
    generate,
    hw2_2,
    load_face_unet,
    load_noise,
    load_noises,
)
from dlcv.faces.unet import FaceUNet
from dlcv.io.images import minmax_to_uint8

WIDTH, SIZE, COUNT = 16, 32, 3


def random_face_unet(seed: int = 0) -> FaceUNet:
    """A random-weight narrow face UNet whose output conv is scaled down (x0.005).

    A DDIM trajectory is an ODE solve; with an untrained network of full output
    gain it is chaotic (float32 rounding doubles every few steps), so no two
    implementations could agree to 1e-5. A small output layer, as in DDPM's own
    initialisation, keeps the network's influence (checked below) but not the chaos.
    """
    torch.manual_seed(seed)
    model = FaceUNet(WIDTH).eval()
    with torch.no_grad():
        model.out[2].weight.mul_(0.005)
        model.out[2].bias.mul_(0.005)
    return model


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    """A UNet.pt, a noise folder (one file saved as (3, H, W)) and diffusers' result for them."""
    root = tmp_path_factory.mktemp("face")
    model = random_face_unet()
    unet = root / "UNet.pt"
    torch.save(model.state_dict(), unet)
    noises = torch.randn(COUNT, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    noise_dir = root / "noise"
    noise_dir.mkdir()
    for i in reversed(range(COUNT)):  # written out of order: the sort must not depend on it
        torch.save(noises[i] if i == 1 else noises[i : i + 1].clone(), noise_dir / f"{i:02d}.pt")
    (noise_dir / "notes.txt").write_text("not a noise")
    scheduler = course_ddim_scheduler(50)
    x = noises.clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(model(x, t.expand(COUNT)), t, x).prev_sample
    return {"unet": unet, "noise_dir": noise_dir, "noises": noises, "reference": x, "root": root}


def test_scheduler_timesteps_are_the_course_ones():
    assert course_ddim_scheduler(50).timesteps.tolist() == ddim_timesteps(50) == list(range(981, 0, -20))


def test_generate_equals_diffusers_ddim_step_by_step(case):
    model = load_face_unet(case["unet"])
    ours = generate(model, case["noises"], device=torch.device("cpu"), precision="fp32")
    assert ours.dtype == torch.float32 and ours.shape == case["noises"].shape
    assert float((ours - case["reference"]).abs().max()) < 1e-5
    # the network matters: DDIM with a zero noise prediction gives something else
    zero_eps = constant_eps(lambda x, t: torch.zeros_like(x))
    zero = sample_batches(zero_eps, case["noises"], NoiseSchedule.linear())
    assert float((zero - ours).abs().mean()) > 0.05


def test_hw2_2_writes_minmax_pngs_named_by_stem(case, tmp_path):
    out = tmp_path / "out" / "nested"
    paths = hw2_2(case["noise_dir"], out, case["unet"], batch_size=2, device="cpu", progress=False)
    assert [p.name for p in paths] == ["00.png", "01.png", "02.png"]
    assert sorted(p.name for p in out.iterdir()) == ["00.png", "01.png", "02.png"]
    expected = minmax_to_uint8(case["reference"]).permute(0, 2, 3, 1).numpy()
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            assert im.mode == "RGB" and im.size == (SIZE, SIZE)
            pixels = np.asarray(im)
        assert pixels.min() == 0 and pixels.max() == 255  # each image stretched on its own
        assert np.abs(pixels.astype(int) - expected[i].astype(int)).max() <= 1


def test_noise_shapes_and_order(case):
    stems, noises = load_noises(case["noise_dir"])
    assert stems == ["00", "01", "02"]
    assert torch.equal(noises, case["noises"])
    assert load_noise(case["noise_dir"] / "01.pt").shape == (3, SIZE, SIZE)


@pytest.mark.parametrize("capability", [(7, 5), (9, 0)])
def test_auto_precision_is_fp32_on_cpu_and_tf32_on_every_cuda_card(monkeypatch, capability):
    """Problem 2's documented exception to the precision rule: TF32, whatever the card."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert face_precision("auto", torch.device("cpu")) == "fp32"
    assert face_precision("auto", torch.device("cuda")) == "tf32"
    assert face_precision("bf16", torch.device("cuda")) == "bf16"
    assert face_precision("fp16", torch.device("cuda")) == "fp16"
    with pytest.raises(UserError, match="`precision`"):
        face_precision("fp8", torch.device("cpu"))


class Foo:
    pass


def _write_noise(folder: Path, value: object, name: str = "00.pt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(value, bytes):
        path.write_bytes(value)
    else:
        torch.save(value, path)
    return path


BAD_NOISES = [
    (torch.zeros(2, 3, 32, 32), "shape (2, 3, 32, 32), expected (1, 3, H, W) or (3, H, W)"),
    (torch.zeros(1, 1, 32, 32), "expected (1, 3, H, W)"),
    (torch.zeros(1, 3, 40, 32), "must divide by 32"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.long), "expected floating point"),
    (torch.full((1, 3, 32, 32), float("nan")), "NaN"),
    ({"noise": torch.zeros(1, 3, 32, 32)}, "holds a dict, expected a tensor"),
    ({"x": Foo()}, "Foo to load, which is refused"),
    (b"not a torch file", "it is a text file, not a noise tensor"),
    (b"", "it is an empty file, not a noise tensor"),
]


@pytest.mark.parametrize(("value", "message"), BAD_NOISES)
def test_malformed_noise_files_are_one_line_errors(tmp_path, value, message):
    path = _write_noise(tmp_path, value)
    with pytest.raises(UserError) as err:
        load_noises(tmp_path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_noise_folder_problems(tmp_path):
    with pytest.raises(UserError, match="noise folder not found"):
        load_noises(tmp_path / "missing")
    with pytest.raises(UserError, match="contains no .pt files"):
        load_noises(tmp_path)
    _write_noise(tmp_path, torch.zeros(1, 3, 32, 32), "00.pt")
    _write_noise(tmp_path, torch.zeros(1, 3, 64, 32), "01.pt")
    with pytest.raises(UserError, match="differ in shape"):
        load_noises(tmp_path)


def test_state_dicts_that_do_not_fit(case, tmp_path):
    good = torch.load(case["unet"], weights_only=True)

    def check(value: object, message: str, suffix: str = ".pt") -> None:
        path = tmp_path / f"bad{suffix}"
        if isinstance(value, bytes):
            path.write_bytes(value)
        else:
            torch.save(value, path)
        with pytest.raises(UserError) as err:
            load_face_unet(path)
        assert message in str(err.value) and "\n" not in str(err.value)

    check(
        {k: v for k, v in good.items() if k != "mid1.attention.qkv.bias"},
        "1 missing (mid1.attention.qkv.bias)",
    )
    check({**good, "extra": torch.zeros(1)}, "1 unexpected (extra)")
    check(
        {**good, "up3.resblocks.conv1.weight": torch.zeros(3, 3)}, "wrong shape (up3.resblocks.conv1.weight"
    )
    check({"model": good, "step": 3}, "training checkpoint")
    check({"down1.weight": torch.zeros(3)}, "no usable 4-D down1.weight")
    check({"down1.weight": torch.zeros(7, 3, 3, 3)}, "no usable 4-D down1.weight")  # odd width
    check([1, 2], "is not a state dict")
    check({"a": Foo()}, "Foo to load, which is refused")
    check(b"<html>", "it is a text file, not a face UNet state dict")
    check(b"junk", "cannot read weights", suffix=".safetensors")
    with pytest.raises(UserError, match="UNet state dict not found"):
        load_face_unet(tmp_path / "nowhere.pt")


def test_loading_gives_float32_eval_model_on_real_tensors(case):
    model = load_face_unet(case["unet"])
    assert not model.training
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.state_dict().values())
    assert model.base_channels == WIDTH


def test_output_folder_that_is_a_file_fails_before_sampling(case, tmp_path):
    target = tmp_path / "file"
    target.write_text("mine")
    with pytest.raises(UserError, match="is not a folder"):
        hw2_2(case["noise_dir"], target, case["unet"], device="cpu", progress=False)
    assert target.read_text() == "mine"
