"""The course scripts' outputs, pixel for pixel, are those recorded before a refactoring.

``hw2_1.sh`` (a random tiny model with DDIM, the same with DPM-Solver++ at eta 1, and the
shipped model), ``hw2_2.sh`` (a random tiny face UNet) and ``hw2_3.sh`` (a random tiny Stable
Diffusion with learned tokens) run with fixed seeds on one CPU thread; the digest of every
image's decoded pixels (and names) must equal the one in ``tests/fixtures/course_outputs.json``.
A change that alters what a user's script writes fails here; one that means to re-records
with ``DLCV_RECORD_COURSE_OUTPUTS=1 pytest tests/test_course_outputs.py`` and says why.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from .conftest import FIXTURES, REPO, run_script

RECORD = FIXTURES / "course_outputs.json"
RECORDING = os.environ.get("DLCV_RECORD_COURSE_OUTPUTS") == "1"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def digest(folder: Path) -> dict[str, object]:
    """The number of PNGs under ``folder`` and a SHA-256 over their relative names and pixels."""
    files = sorted(folder.rglob("*.png"))
    h = hashlib.sha256()
    for path in files:
        with Image.open(path) as image:
            pixels = np.asarray(image)
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        h.update(repr(pixels.shape).encode() + pixels.tobytes())
    return {"images": len(files), "sha256": h.hexdigest()}


def check(case: str, folder: Path) -> None:
    got = digest(folder)
    recorded = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    if RECORDING:
        RECORD.write_text(json.dumps({**recorded, case: got}, indent=2, sort_keys=True) + "\n")
        return
    assert case in recorded, f"{case}: no record in {RECORD}"
    assert got == recorded[case], f"{case}: the course outputs changed"


def _tiny_pb1(tmp_path: Path, **sample: object) -> Path:
    from dlcv.digits.model import build_model, export_model, load_config

    cfg = load_config("tiny")
    for key, value in sample.items():
        cfg.sample[key] = value
    torch.manual_seed(0)
    return export_model(build_model(cfg), tmp_path / "model", cfg)


@pytest.mark.parametrize(
    "case, sample",
    [("hw2_1_tiny_ddim", {}), ("hw2_1_tiny_dpmpp_eta1", {"sampler": "dpm++", "eta": 1.0, "guidance": 5.0})],
)
def test_hw2_1_on_a_tiny_model(tmp_path, case, sample):
    model = _tiny_pb1(tmp_path, **sample)
    result = run_script("hw2_1.sh", str(tmp_path / "out"), env={"PB1_CKPT": str(model)})
    assert result.returncode == 0, result.stderr
    check(case, tmp_path / "out")


def test_hw2_1_on_the_shipped_model(tmp_path):
    shipped = REPO / "dlcv" / "assets" / "pb1" / "model.safetensors"
    result = run_script("hw2_1.sh", str(tmp_path / "out"), env={"PB1_CKPT": str(shipped)})
    assert result.returncode == 0, result.stderr
    check("hw2_1_shipped", tmp_path / "out")


def test_hw2_2_on_a_tiny_face_unet(tmp_path):
    from dlcv.faces.unet import FaceUNet

    torch.manual_seed(0)
    model = FaceUNet(8)
    with torch.no_grad():  # a small output layer: a calm trajectory, as tests/PB2/conftest.py
        model.out[2].weight.mul_(0.005)
        model.out[2].bias.mul_(0.005)
    torch.save(model.state_dict(), tmp_path / "UNet.pt")
    (tmp_path / "noise").mkdir()
    noises = torch.randn(3, 1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for i, noise in enumerate(noises):
        torch.save(noise.clone(), tmp_path / "noise" / f"{i:02d}.pt")
    result = run_script("hw2_2.sh", str(tmp_path / "noise"), str(tmp_path / "out"), str(tmp_path / "UNet.pt"))
    assert result.returncode == 0, result.stderr
    check("hw2_2_tiny", tmp_path / "out")


@pytest.mark.parametrize(
    "case, solver", [("hw2_3_tiny_dpmpp", []), ("hw2_3_tiny_ddim", ["--solver", "ddim"])]
)
def test_hw2_3_on_a_tiny_stable_diffusion(tmp_path, case, solver):
    from dlcv.stable_diffusion.tiny import build_tiny_sd, save_tiny_checkpoint

    sd = build_tiny_sd(seed=0)
    width = sd.text_encoder.config.hidden_size
    vectors = torch.randn(3, width, generator=torch.Generator().manual_seed(1))
    emb = tmp_path / "embeddings"
    for folder, token, value in (("new1", "<new1>", vectors[:2]), ("1", "<new2>", vectors[2])):
        (emb / folder).mkdir(parents=True)
        save_file({token: value.clone()}, emb / folder / "learned_embeds.safetensors")
    ckpt = save_tiny_checkpoint(sd, tmp_path / "tiny.ckpt")
    config = sd.config.save(tmp_path / "tiny_config.json")
    result = run_script(
        "hw2_3.sh",
        str(FIXTURES / "textual_inversion_input.json"),
        str(tmp_path / "out"),
        str(ckpt),
        "--model-config",
        str(config),
        "--resolution",
        "16",
        "--steps",
        "3",
        "--batch-size",
        "10",
        "--device",
        "cpu",
        "--quiet",
        *solver,
        env={**OFFLINE, "PB3_EMBEDDINGS": str(emb)},
    )
    assert result.returncode == 0, result.stderr
    check(case, tmp_path / "out")
