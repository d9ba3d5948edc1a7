"""Every entry point against bad inputs: one ``error: ...`` line and exit code 2 (or exit 0 and
one ``warning: ...`` line where the input is legal but probably a mistake), nothing written
outside the folder asked for, nothing of the user's changed, no code from a file ever run.

Each case runs the script's ``main(argv)`` in-process, wrapped by :func:`dlcv.cli.run` as
the script itself is, on tiny models in the real file formats. The table keeps the cases
that already passed so they stay passing. Read-only folders are real: a read-only bind
mount when the tests run as root (permission bits do not stop root), ``chmod 555`` otherwise.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import hashlib
import io
import json
import os
import pickle
import re
import shlex
import shutil
import struct
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from dlcv.cli import run

from .conftest import REPO, load_script
from .hostile import bomb_png


class Trap:
    """Unpickling this calls ``open(marker, "w")``: the marker proves that code from a file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def _png(path: Path, size: int = 28, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory, digits_root) -> dict[str, Path]:
    """Tiny models and data in the formats users hand the scripts, plus hostile files."""
    from dlcv.clip_eval.tiny import random_clip, save_hf_folder
    from dlcv.digits.classifiers import LeNet, SmallCNN, save_course_checkpoint, save_digit_classifier
    from dlcv.digits.model import build_model, export_model, load_config
    from dlcv.faces.unet import FaceUNet
    from dlcv.stable_diffusion.tiny import build_tiny_sd, save_tiny_checkpoint

    root = tmp_path_factory.mktemp("world")
    w = {"root": root, "digits": digits_root, "marker": root / "CODE_WAS_RUN"}
    torch.manual_seed(0)
    cfg = load_config("tiny")
    w["pb1"] = export_model(build_model(cfg), root / "pb1", cfg)
    w["face_unet"] = root / "face" / "UNet.pt"
    w["face_unet"].parent.mkdir()
    torch.save(FaceUNet(8).state_dict(), w["face_unet"])
    w["noise"] = root / "face" / "noise"
    w["noise"].mkdir()
    for i in range(4):
        torch.save(torch.randn(1, 3, 32, 32), w["noise"] / f"{i:02d}.pt")
    sd = build_tiny_sd(seed=0)
    w["sd"] = save_tiny_checkpoint(sd, root / "sd" / "tiny.ckpt")
    w["sd_config"] = sd.config.save(root / "sd" / "tiny_config.json")
    width = sd.text_encoder.config.hidden_size
    w["emb"] = root / "emb"  # <new1> and <new2> of tests/fixtures/textual_inversion_input.json
    (w["emb"] / "new1").mkdir(parents=True)
    save_file({"<new1>": torch.randn(width)}, w["emb"] / "new1" / "learned_embeds.safetensors")
    (w["emb"] / "new2").mkdir()
    save_file({"<new2>": torch.randn(width)}, w["emb"] / "new2" / "learned_embeds.safetensors")
    w["emb_other"] = root / "emb_other"  # concept 0's folder stores another token's embedding
    (w["emb_other"] / "0").mkdir(parents=True)
    save_file({"<other9>": torch.randn(width)}, w["emb_other"] / "0" / "learned_embeds.safetensors")
    w["input_json"] = REPO / "tests" / "fixtures" / "textual_inversion_input.json"
    w["ti_images"] = root / "ti_images"  # PB3/train.py --json data: DATA/{key}/
    for key in ("0", "1"):
        _png(w["ti_images"] / key / "a.png", 16)
    w["clip"] = save_hf_folder(random_clip(), root / "clip")
    w["zs"] = root / "zs"
    (w["zs"] / "val").mkdir(parents=True)
    (w["zs"] / "id2label.json").write_text(json.dumps({"0": "apple", "1": "pear"}))
    for name in ("0_0000.png", "1_0000.png"):
        _png(w["zs"] / "val" / name, 32)
    w["cls"] = save_course_checkpoint(LeNet(), None, root / "cls" / "Classifier.pth")
    w["svhn_cls"] = save_digit_classifier(SmallCNN(), root / "cls" / "svhn.safetensors", "smallcnn")
    w["gen"] = root / "gen"  # generated digits, 28x28
    w["gen_small"] = root / "gen_small"  # mnistm/ at 5x5: not what Problem 1 asks for
    for digit in range(2):
        for name in ("mnistm", "svhn"):
            _png(w["gen"] / name / f"{digit}_001.png", 28, digit)
            _png(w["gen_small"] / name / f"{digit}_001.png", 5 if name == "mnistm" else 28, digit)
    w["grade"] = root / "grade"  # a complete grading tree: input.json, refs/0/, out/0/0/00..24.png
    (w["grade"] / "input.json").parent.mkdir()
    concept = {
        "token_name": "<new1>",
        "prompt": ["a <new1>"],
        "prompt_4_clip_eval": ["a dog"],
        "baseline": [[1, 1]],
    }
    (w["grade"] / "input.json").write_text(json.dumps({"0": concept}))
    _png(w["grade"] / "refs" / "0" / "a.png", 8)
    for i in range(25):
        _png(w["grade"] / "out" / "0" / "0" / f"{i:02d}.png", 8, i)
    # hostile and foreign files
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hparams": Trap(w["marker"])}, root / "trap.pt")
    w["trap_zip"] = root / "trap.pt"
    w["trap_pkl"] = root / "trap.pkl"  # a plain (non-torch) pickle, protocol 4
    w["trap_pkl"].write_bytes(pickle.dumps({"state_dict": Trap(w["marker"])}, protocol=4))
    w["trap_legacy"] = root / "trap_legacy.pt"  # torch.save's legacy (non-zip) format
    torch.save({"x": Trap(w["marker"])}, w["trap_legacy"], _use_new_zipfile_serialization=False)
    w["text"] = root / "notes.txt"
    w["text"].write_text("this is a text file\n")
    w["empty"] = root / "empty.pt"
    w["empty"].write_bytes(b"")
    w["zipfile"] = root / "model.pt"  # a torch.save file where safetensors is expected
    torch.save({"w": torch.zeros(1)}, w["zipfile"])
    w["file"] = root / "a_file"
    w["file"].write_text("x")
    assert not w["marker"].exists()
    return w


# ---- the cases ----------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    script: str
    args: str  # formatted with the world's paths, {out}, {tmp} and {ro}, then split like a shell
    expect: str  # "error" (exit 2) or "warning" (exit 0)
    pattern: str  # what the one stderr line must contain (a regex)
    setup: Callable[[Path, dict], None] | None = None  # files of the user's, made before the run
    new: tuple[str, ...] = ()  # globs (relative to tmp) of the files a warning case writes
    stdout_full: bool = False  # standard output refuses every write (ENOSPC), as > /dev/full does


def _json(tmp: Path, name: str, data: dict) -> None:
    (tmp / name).write_text(json.dumps(data))


def _foreign_png(tmp: Path, w: dict) -> None:
    _png(tmp / "out" / "mnistm" / "old_run.png")


def _escape_json(tmp: Path, w: dict) -> None:
    _json(tmp, "input.json", {"../escape": {"token_name": "<new1>", "prompt": ["a <new1>"]}})


def _escape_train(tmp: Path, w: dict) -> None:
    _escape_json(tmp, w)
    _png(tmp / "escape" / "a.png", 16)  # the images of the escaping key (next to --data)


def _token_absent(tmp: Path, w: dict) -> None:
    _json(tmp, "input.json", {"0": {"token_name": "<new1>", "prompt": ["a photo of a dog"]}})


def _other_token(tmp: Path, w: dict) -> None:
    _json(tmp, "input.json", {"0": {"token_name": "<zz9>", "prompt": ["a <zz9> on a hill"]}})


def _file_as_mnistm(tmp: Path, w: dict) -> None:
    (tmp / "out").mkdir()
    (tmp / "out" / "mnistm").write_text("mine")


def _trap_checkpoint(sub: str) -> Callable[[Path, dict], None]:
    def setup(tmp: Path, w: dict) -> None:
        (tmp / "out" / sub).mkdir(parents=True, exist_ok=True)
        (tmp / "out" / sub / "checkpoint.pt").write_bytes(w["trap_zip"].read_bytes())

    return setup


def _pb3_train_json_resume(tmp: Path, w: dict) -> None:
    _trap_checkpoint("0")(tmp, w)


def _existing_pngs(tmp: Path, w: dict) -> None:
    _png(tmp / "out" / "0" / "0" / "mine.png", 8)


def _pb1_edited(edit: Callable[[dict], object]) -> Callable[[Path, dict], None]:
    """``tmp/edited.safetensors``: the world's PB1 model with its embedded config edited."""

    def setup(tmp: Path, w: dict) -> None:
        from dlcv.io.checkpoint import load_weights, save_weights

        tensors, cfg = load_weights(w["pb1"])
        edit(cfg)
        save_weights(tensors, tmp / "edited.safetensors", cfg)

    return setup


def _pb1_nan(tmp: Path, w: dict) -> None:
    from dlcv.io.checkpoint import load_weights, save_weights

    tensors, cfg = load_weights(w["pb1"])
    name = sorted(k for k, v in tensors.items() if v.is_floating_point())[-1]
    tensors[name].view(-1)[0] = float("nan")
    save_weights(tensors, tmp / "edited.safetensors", cfg)


def _face_unet(change: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[Path, dict], None]:
    """``tmp/u.pt``: the world's face UNet with ``change`` applied to each weight."""

    def setup(tmp: Path, w: dict) -> None:
        state = torch.load(w["face_unet"], weights_only=True)
        torch.save({k: change(v.clone()) for k, v in state.items()}, tmp / "u.pt")

    return setup


def _first_nan(t: torch.Tensor) -> torch.Tensor:
    t.view(-1)[0] = float("nan")
    return t


def _resume_other(kind: str) -> Callable[[Path, dict], None]:
    """``tmp/out/checkpoint.pt`` of another PB1 width (``wide``) or of the face UNet (``face``)."""

    def setup(tmp: Path, w: dict) -> None:
        from dlcv.digits.model import build_model, load_config
        from dlcv.faces.unet import FaceUNet

        if kind == "face":
            model = FaceUNet(8)
        else:
            cfg = load_config("tiny")
            model = build_model(load_config("tiny", [f"model.base_channels={2 * cfg.model.base_channels}"]))
        optimizer = torch.optim.AdamW(model.parameters())
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        (tmp / "out").mkdir()
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "step": 1,
            },
            tmp / "out" / "checkpoint.pt",
        )

    return setup


def _bombs(*names: str) -> Callable[[Path, dict], None]:
    """A decompression bomb (a PNG header claiming 100M pixels) at each ``tmp/NAME``, next to
    small good PNGs of the same folder (``a.png``, ``b.png``)."""

    def setup(tmp: Path, w: dict) -> None:
        for name in names:
            path = tmp / name
            for good in ("a.png", "b.png"):
                _png(path.parent / good, 64)
            bomb_png(path, 10_000, 10_000)

    return setup


def _zs_bomb(tmp: Path, w: dict) -> None:
    shutil.copytree(w["zs"], tmp / "zs")
    bomb_png(tmp / "zs" / "val" / "1_0001.png", 10_000, 10_000)


def _clip_header_bomb(tmp: Path, w: dict) -> None:
    """A CLIP folder whose model.safetensors claims a 4-exabyte header."""
    shutil.copytree(w["clip"], tmp / "clip")
    (tmp / "clip" / "model.safetensors").write_bytes(struct.pack("<Q", 2**62) + b"{}")


def _deep_json(tmp: Path, w: dict) -> None:
    (tmp / "deep.json").write_text("[" * 100_000 + "]" * 100_000)


def _embedding(make: Callable[[int], torch.Tensor]) -> Callable[[Path, dict], None]:
    """``tmp/e.safetensors``: ``{"<zz1>": make(width)}`` for the world's text encoder width."""

    def setup(tmp: Path, w: dict) -> None:
        from safetensors.torch import load_file

        width = load_file(w["emb"] / "new1" / "learned_embeds.safetensors")["<new1>"].shape[-1]
        save_file({"<zz1>": make(width)}, tmp / "e.safetensors")

    return setup


def _link(name: str) -> Callable[[Path, dict], None]:
    """``tmp/NAME``: a symbolic link to the folder ``tmp/elsewhere`` (holding one file of the user's)."""

    def setup(tmp: Path, w: dict) -> None:
        (tmp / "elsewhere").mkdir()
        (tmp / "elsewhere" / "mine.txt").write_text("mine")
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).symlink_to(tmp / "elsewhere", target_is_directory=True)

    return setup


def _pb3_json_link(tmp: Path, w: dict) -> None:
    _link("out/0")(tmp, w)


PB1 = "--ckpt {pb1} --device cpu --n-per-digit 1"
EDITED = "--ckpt {tmp}/edited.safetensors --device cpu --n-per-digit 1 --steps 2 --out-dir {out}"
HUGE = "1000000000"  # --batch-size 1e9: refused before any work, not out of memory later
LONG_PROMPT = " ".join(["a photo of a dog on a hill"] * 12) + " <zz1>"  # past CLIP's 77 tokens
PB1_TRAIN = "--data {digits} --config tiny --device cpu --limit 8"
FACE = "--noise-dir {noise} --unet {face_unet} --out-dir {out} --device cpu --quiet"
DIGIT_FIG = "--digit-ckpt {pb1} --out {out} --device cpu --quiet --steps 2"
SD = (
    "--ckpt {sd} --model-config {sd_config} --embeddings {emb} --out-dir {out} --resolution 16 "
    "--steps 2 --device cpu --quiet --n-images 1 --batch-size 1"
)
SD_JSON = "--json {input_json} " + SD
TI = "--sd-ckpt {sd} --model-config {sd_config} --device cpu"
TI_ONE = TI + " --images {ti_images}/0 --token <zz1> --out {out}"
ZS = "--data {zs} --clip {clip} --output_dir {out} --device cpu --workers 0"
GRADE = (
    "--json_path {grade}/input.json --input_dir {grade}/refs --output_dir {grade}/out "
    "--device cpu --workers 0"
)
DIGITS = "--checkpoint {cls} --svhn-checkpoint {svhn_cls} --device cpu"
NEEDS = r"it is a pickle that needs io\.open to load, which is refused"

CASES = [
    # ---- PB1/inference.py (hw2_1.sh) -------------------------------------------------------
    Case("pb1-steps-negative", "PB1/inference.py", PB1 + " --out-dir {out} --steps -5", "error", r"--steps must be 1-1000"),
    Case("pb1-steps-5000", "PB1/inference.py", PB1 + " --out-dir {out} --steps 5000", "error", r"--steps must be 1-1000"),
    Case("pb1-steps-0", "PB1/inference.py", PB1 + " --out-dir {out} --steps 0", "error", r"--steps must be 1-1000, got 0"),
    Case("pb1-guidance-nan", "PB1/inference.py", PB1 + " --out-dir {out} --guidance nan", "error", r"--guidance must be a finite number"),
    Case("pb1-guidance-inf", "PB1/inference.py", PB1 + " --out-dir {out} --guidance inf", "error", r"--guidance must be a finite number"),
    Case("pb1-eta-negative", "PB1/inference.py", PB1 + " --out-dir {out} --eta -1", "error", r"--eta must be 0 or more"),
    Case("pb1-n-per-digit-0", "PB1/inference.py", PB1 + " --out-dir {out} --n-per-digit 0", "error", r"--n-per-digit must be 1-999"),
    Case("pb1-out-dir-is-a-file", "PB1/inference.py", PB1 + " --out-dir {file}", "error", r"--out-dir .*a_file exists and is not a folder"),
    Case("pb1-mnistm-is-a-file", "PB1/inference.py", PB1 + " --out-dir {out}", "error", r"output folder .*out/mnistm exists and is not a folder", _file_as_mnistm),
    Case("pb1-out-dir-read-only", "PB1/inference.py", PB1 + " --out-dir {ro}", "error", r"cannot write in output folder .*ro: read-only"),
    Case("pb1-ckpt-missing", "PB1/inference.py", "--ckpt {tmp}/none.safetensors --out-dir {out}", "error", r"no PB1 model at .*none\.safetensors: train one"),
    Case("pb1-ckpt-is-a-pt", "PB1/inference.py", "--ckpt {zipfile} --out-dir {out}", "error", r"expected a \.safetensors model written by PB1/train\.py, but it is a zip archive"),
    Case("pb1-ckpt-text", "PB1/inference.py", "--ckpt {text} --out-dir {out}", "error", r"expected a \.safetensors model written by PB1/train\.py, but it is a text file"),
    Case("pb1-ckpt-trap", "PB1/inference.py", "--ckpt {trap_pkl} --out-dir {out}", "error", r"expected a \.safetensors model .* but it is a Python pickle"),
    Case("pb1-foreign-pngs", "PB1/inference.py", PB1 + " --out-dir {out} --steps 2", "warning",
         r"out/mnistm already holds 1 other PNG file\(s\) \(e\.g\. old_run\.png\), left as they are: the grader scores every image",
         _foreign_png, ("out/mnistm/[0-9]_001.png", "out/svhn/[0-9]_001.png")),
    # ---- PB1/train.py and PB1/report.py -------------------------------------------------------
    Case("pb1-train-unknown-key", "PB1/train.py", PB1_TRAIN + " --out {out} --set train.bogus=1", "error", r"unknown key train\.bogus"),
    Case("pb1-train-set-without-equals", "PB1/train.py", PB1_TRAIN + " --out {out} --set trainlr", "error", r"--set trainlr: expected KEY=VALUE"),
    Case("pb1-train-lr-nan", "PB1/train.py", PB1_TRAIN + " --out {out} --set train.lr=nan", "error", r"train\.lr must be a positive number"),
    Case("pb1-train-model-key", "PB1/train.py", PB1_TRAIN + " --out {out} --set model.bogus=1", "error", r"config .*bogus"),
    Case("pb1-train-time-budget", "PB1/train.py", PB1_TRAIN + " --out {out} --time-budget -1", "error", r"--time-budget must be a positive number"),
    Case("pb1-train-grad-accum-0", "PB1/train.py", PB1_TRAIN + " --out {out} --set train.grad_accum=0", "error", r"config .*pb1_tiny\.yaml: train\.grad_accum must be >= 1, got 0"),
    Case("pb1-train-steps-0", "PB1/train.py", PB1_TRAIN + " --out {out} --steps 0", "error", r"config .*pb1_tiny\.yaml: train\.steps must be >= 1, got 0"),
    Case("pb1-train-data-missing", "PB1/train.py", "--data {tmp}/nodata --out {out}", "error", r"nodata"),
    Case("pb1-train-out-read-only", "PB1/train.py", PB1_TRAIN + " --out {ro}", "error", r"cannot write in output folder .*ro.*[Rr]ead-only"),
    Case("pb1-train-out-is-a-file", "PB1/train.py", PB1_TRAIN + " --out {file}", "error", r"output folder .*a_file exists and is not a folder"),
    Case("pb1-train-resume-trap", "PB1/train.py", PB1_TRAIN + " --out {out} --resume", "error", r"cannot read checkpoint .*out/checkpoint\.pt: " + NEEDS, _trap_checkpoint(".")),
    Case("pb1-report-guidance-nan", "PB1/report.py", "--ckpt {pb1} --out-dir {out} --guidance nan", "error", r"--guidance must be a finite number"),
    Case("pb1-report-out-is-a-file", "PB1/report.py", "--ckpt {pb1} --out-dir {file} --steps 2", "error", r"--out-dir .*a_file exists and is not a folder"),
    # ---- PB2/inference.py (hw2_2.sh), PB2/experiments.py, PB2/train.py --------------------------
    Case("pb2-noise-dir-missing", "PB2/inference.py", "--noise-dir {tmp}/nonoise --unet {face_unet} --out-dir {out}", "error", r"noise folder not found: .*nonoise"),
    Case("pb2-unet-text", "PB2/inference.py", "--noise-dir {noise} --unet {text} --out-dir {out}", "error", r"cannot read UNet state dict .*notes\.txt: it is a text file, not a face UNet state dict"),
    Case("pb2-unet-empty", "PB2/inference.py", "--noise-dir {noise} --unet {empty} --out-dir {out}", "error", r"it is an empty file"),
    Case("pb2-unet-trap-zip", "PB2/inference.py", "--noise-dir {noise} --unet {trap_zip} --out-dir {out}", "error", NEEDS),
    Case("pb2-unet-trap-pickle", "PB2/inference.py", "--noise-dir {noise} --unet {trap_pkl} --out-dir {out}", "error", NEEDS),
    Case("pb2-unet-trap-legacy", "PB2/inference.py", "--noise-dir {noise} --unet {trap_legacy} --out-dir {out}", "error", NEEDS),
    Case("pb2-unet-bad-safetensors", "PB2/inference.py", "--noise-dir {noise} --unet {tmp}/u.safetensors --out-dir {out}", "error",
         r"expected a face UNet state dict in safetensors format, but it is a text file", lambda tmp, w: (tmp / "u.safetensors").write_text("{}")),
    Case("pb2-noise-trap", "PB2/inference.py", "--noise-dir {tmp}/noise --unet {face_unet} --out-dir {out}", "error", r"cannot read noise file .*00\.pt: " + NEEDS,
         lambda tmp, w: ((tmp / "noise").mkdir(), (tmp / "noise" / "00.pt").write_bytes(w["trap_zip"].read_bytes()))),
    Case("pb2-out-dir-read-only", "PB2/inference.py", "--noise-dir {noise} --unet {face_unet} --out-dir {ro}", "error", r"cannot write in output folder .*ro: read-only"),
    Case("pb2-out-dir-is-a-file", "PB2/inference.py", "--noise-dir {noise} --unet {face_unet} --out-dir {file}", "error", r"exists and is not a folder"),
    Case("pb2-batch-size-negative", "PB2/inference.py", FACE + " --batch-size -1", "error", r"--batch-size must be 0 \(all\) or 1-65,536, got -1"),
    Case("pb2-fig-guidance-nan", "PB2/experiments.py", DIGIT_FIG + " --guidance nan", "error", r"--guidance must be a finite number"),
    Case("pb2-fig-guidance-inf", "PB2/experiments.py", DIGIT_FIG + " --guidance inf", "error", r"--guidance must be a finite number"),
    Case("pb2-fig-steps-0", "PB2/experiments.py", "--digit-ckpt {pb1} --out {out} --steps 0", "error", r"--steps must be 1-1000, got 0"),
    Case("pb1-steps-1000-ddim", "PB1/inference.py", PB1 + " --out-dir {out} --sampler ddim --steps 1000", "error", r"--steps must be 1-999 for ddim on this model's 1000 timesteps, got 1000"),
    Case("pb2-fig-unet-trap", "PB2/experiments.py", "--unet {trap_zip} --noise-dir {noise} --out {out} --device cpu", "error", NEEDS),
    Case("pb2-fig-out-read-only", "PB2/experiments.py", "--digit-ckpt {pb1} --out {ro} --device cpu --steps 2", "error", r"cannot write in output folder .*ro: read-only"),
    Case("pb2-train-lr-nan", "PB2/train.py", "--data {tmp} --out {out} --lr nan", "error", r"--lr must be a positive number"),
    Case("pb2-train-time-budget-nan", "PB2/train.py", "--data {tmp} --out {out} --time-budget nan", "error", r"--time-budget must be a positive number"),
    Case("pb2-train-warmup-negative", "PB2/train.py", "--data {tmp} --out {out} --warmup -1", "error", r"--warmup must be >= 0, got -1"),
    Case("pb2-train-ema-1", "PB2/train.py", "--data {tmp} --out {out} --ema 1", "error", r"--ema must be in \[0, 1\)"),
    # ---- PB3/inference.py (hw2_3.sh) ------------------------------------------------------------
    Case("pb3-guidance-nan", "PB3/inference.py", SD_JSON + " --guidance nan", "error", r"--guidance must be a finite number, got nan"),
    Case("pb3-guidance-inf", "PB3/inference.py", SD_JSON + " --guidance inf", "error", r"--guidance must be a finite number, got inf"),
    Case("pb3-eta-negative", "PB3/inference.py", SD_JSON + " --eta -1", "error", r"--eta must be a number >= 0"),
    Case("pb3-eta-nan", "PB3/inference.py", SD_JSON + " --eta nan", "error", r"--eta must be a number >= 0"),
    Case("pb3-n-images-0", "PB3/inference.py", SD_JSON + " --n-images 0", "error", r"--n-images must be positive, got 0"),
    Case("pb3-key-escapes", "PB3/inference.py", "--json {tmp}/input.json " + SD, "error", r"concept key '\.\./escape' cannot be used as a folder name", _escape_json),
    Case("pb3-json-missing", "PB3/inference.py", "--json {tmp}/nope.json " + SD, "error", r"input json not found"),
    Case("pb3-json-text", "PB3/inference.py", "--json {text} " + SD, "error", r"is not valid JSON"),
    Case("pb3-untrained-token", "PB3/inference.py", "--json {tmp}/input.json " + SD, "error", r"no learned embedding for <zz9> \(concept '0'\)", _other_token),
    Case("pb3-out-dir-read-only", "PB3/inference.py", SD_JSON.replace("{out}", "{ro}"), "error", r"cannot write in --out-dir .*ro: read-only"),
    Case("pb3-out-dir-is-a-file", "PB3/inference.py", SD_JSON.replace("{out}", "{file}"), "error", r"--out-dir .*a_file exists and is not a folder"),
    Case("pb3-other-pngs", "PB3/inference.py", SD_JSON, "error", r"out/0/0 already holds 1 other PNG file\(s\)", _existing_pngs),
    Case("pb3-ckpt-text", "PB3/inference.py", SD_JSON.replace("{sd}", "{text}"), "error", r"cannot read file .*notes\.txt: it is a text file, not a PyTorch checkpoint"),
    Case("pb3-ckpt-trap-pickle", "PB3/inference.py", SD_JSON.replace("{sd}", "{trap_pkl}"), "error", r"cannot read file .*trap\.pkl: " + NEEDS),
    Case("pb3-ckpt-trap-legacy", "PB3/inference.py", SD_JSON.replace("{sd}", "{trap_legacy}"), "error", NEEDS),
    Case("pb3-ckpt-trap-zip", "PB3/inference.py", SD_JSON.replace("{sd}", "{trap_zip}"), "error", r"trap\.pt is not a Stable Diffusion v1 checkpoint"),
    Case("pb3-embedding-trap-pickle", "PB3/inference.py", "--prompt a_<zz1> --embeddings <zz1>={trap_pkl} " + SD, "error", NEEDS),
    Case("pb3-embedding-trap-zip", "PB3/inference.py", "--prompt a_<zz1> --embeddings <zz1>={trap_zip} " + SD, "error", r"trap\.pt"),
    Case("pb3-embedding-text", "PB3/inference.py", "--prompt a_<zz1> --embeddings <zz1>={tmp}/e.pt " + SD, "error", r"it is a text file",
         lambda tmp, w: (tmp / "e.pt").write_text("<zz1> 0.1 0.2\n")),
    Case("pb3-token-absent", "PB3/inference.py", "--json {tmp}/input.json " + SD, "warning",
         r"concept '0': its token <new1> appears in none of its 1 prompt\(s\)", _token_absent, ("out/0/0/00.png",)),
    Case("pb3-embedding-of-another-token", "PB3/inference.py", "--json {tmp}/input.json " + SD.replace("{emb}", "{emb_other}"), "warning",
         r"emb_other/0/learned_embeds\.safetensors holds the embedding of <other9>, used here for <zz9>", _other_token, ("out/0/0/00.png",)),
    # ---- PB3/train.py ---------------------------------------------------------------------------------
    Case("pb3-train-lr-nan", "PB3/train.py", TI_ONE + " --lr nan", "error", r"--lr must be a positive number, got nan"),
    Case("pb3-train-init-word-empty", "PB3/train.py", TI_ONE + " --init-word ''", "error", r"--init-word must be a word"),
    Case("pb3-train-guidance-nan", "PB3/train.py", TI_ONE + " --guidance nan", "error", r"--guidance must be a finite number"),
    Case("pb3-train-time-budget-nan", "PB3/train.py", TI_ONE + " --time-budget nan", "error", r"--time-budget must be a positive number"),
    Case("pb3-train-crop-min-nan", "PB3/train.py", TI_ONE + " --crop-min nan", "error", r"--crop-min must be in \(0, 1\]"),
    Case("pb3-train-key-escapes", "PB3/train.py", TI + " --json {tmp}/input.json --data {tmp}/data --out {out}", "error",
         r"concept key '\.\./escape' cannot be used as a folder name", _escape_train),
    Case("pb3-train-out-read-only", "PB3/train.py", TI + " --images {ti_images}/0 --token <zz1> --out {ro}/sub", "error",
         r"cannot write in output folder .*ro/sub \(its parent .*ro is not writable\)"),
    Case("pb3-train-resume-trap", "PB3/train.py", TI + " --json {input_json} --data {ti_images} --out {out} --resume", "error",
         r"cannot read checkpoint .*out/0/checkpoint\.pt: " + NEEDS, _pb3_train_json_resume),
    Case("pb3-train-sd-missing", "PB3/train.py", "--sd-ckpt {tmp}/sd.ckpt --images {ti_images}/0 --token <zz1> --out {out}", "error", r"checkpoint not found: .*sd\.ckpt"),
    # ---- PB3/zeroshot.py, evaluation/grade_hw2_3.py ---------------------------------------------
    Case("zs-clip-is-a-face-unet", "PB3/zeroshot.py", ZS.replace("{clip}", "{face_unet}"), "error", r"not an OpenAI CLIP checkpoint: it has no 'visual\.proj' weight"),
    Case("zs-clip-trap", "PB3/zeroshot.py", ZS.replace("{clip}", "{trap_zip}"), "error", r"cannot read CLIP checkpoint .*trap\.pt: " + NEEDS),
    Case("zs-clip-text", "PB3/zeroshot.py", ZS.replace("{clip}", "{text}"), "error", r"it is a text file, not a CLIP checkpoint"),
    Case("zs-out-read-only", "PB3/zeroshot.py", ZS.replace("{out}", "{ro}"), "error", r"cannot write in --output_dir .*ro: read-only"),
    Case("zs-out-is-a-file", "PB3/zeroshot.py", ZS.replace("{out}", "{file}"), "error", r"--output_dir .*a_file exists and is not a folder"),
    Case("zs-data-missing", "PB3/zeroshot.py", ZS.replace("{zs}", "{tmp}/nodata"), "error", r"nodata"),
    Case("grade-clip-is-a-face-unet", "evaluation/grade_hw2_3.py", GRADE + " --clip {face_unet}", "error", r"not an OpenAI CLIP checkpoint"),
    Case("grade-clip-trap", "evaluation/grade_hw2_3.py", GRADE + " --clip {trap_pkl}", "error", NEEDS),
    Case("grade-save-json-is-a-folder", "evaluation/grade_hw2_3.py", GRADE + " --clip {clip} --save_json {tmp}", "error", r"--save_json .* is a folder"),
    Case("grade-key-escapes", "evaluation/grade_hw2_3.py", "--json_path {tmp}/input.json --input_dir {tmp} --output_dir {tmp}", "error",
         r"concept key '\.\./escape' cannot be used", lambda tmp, w: _json(tmp, "input.json", {"../escape": {
             "token_name": "<new1>", "prompt_4_clip_eval": ["a dog"], "baseline": [[1, 1]]}})),
    # ---- evaluation/digit_classifier.py, train_classifier.py, face_mse.py, clip_scores.py -----------
    Case("digits-not-28x28", "evaluation/digit_classifier.py", DIGITS + " --folder {gen_small}", "warning",
         r"2 of 2 images in .*gen_small/mnistm are not 28x28 \(e\.g\. 0_001\.png is 5x5\); they are resized"),
    Case("digits-checkpoint-trap-zip", "evaluation/digit_classifier.py", "--folder {gen} --checkpoint {trap_zip} --svhn-checkpoint {svhn_cls}", "error", NEEDS),
    Case("digits-checkpoint-trap-pickle", "evaluation/digit_classifier.py", "--folder {gen} --checkpoint {trap_pkl} --svhn-checkpoint {svhn_cls}", "error", NEEDS),
    Case("digits-checkpoint-text", "evaluation/digit_classifier.py", "--folder {gen} --checkpoint {text} --svhn-checkpoint {svhn_cls}", "error", r"it is a text file"),
    Case("digits-svhn-trap", "evaluation/digit_classifier.py", "--folder {gen} --checkpoint {cls} --svhn-checkpoint {trap_legacy}", "error", NEEDS),
    Case("digits-svhn-not-safetensors", "evaluation/digit_classifier.py", "--folder {gen} --checkpoint {cls} --svhn-checkpoint {tmp}/s.safetensors", "error",
         r"expected a classifier written by evaluation/train_classifier\.py, but it is a zip archive", lambda tmp, w: (tmp / "s.safetensors").write_bytes(w["zipfile"].read_bytes())),
    Case("digits-batch-size-0", "evaluation/digit_classifier.py", DIGITS + " --folder {gen} --batch-size 0", "error", r"--batch-size must be 1-65,536, got 0"),
    Case("train-classifier-lr-nan", "evaluation/train_classifier.py", "--data {digits} --out {out} --lr nan", "error", r"--lr must be positive, got nan"),
    Case("train-classifier-out-read-only", "evaluation/train_classifier.py", "--data {digits} --out {ro}", "error", r"cannot write in --out .*ro: read-only"),
    Case("face-mse-pass-line-nan", "evaluation/face_mse.py", "{tmp} {tmp} --pass-line nan", "error", r"--pass-line must be a positive number"),
    Case("clip-scores-baseline-nan", "evaluation/clip_scores.py", "--images {tmp} --references {tmp} --text a --baseline nan 1", "error", r"--baseline must be two finite numbers"),
    # ---- issue 25: edited model configs, weights, devices, sizes, bombs, links --------------------
    Case("pb1-config-width-negative", "PB1/inference.py", EDITED, "error", r"edited\.safetensors: its config: model\.base_channels must be a positive integer, got -8",
         _pb1_edited(lambda c: c["model"].update(base_channels=-8))),
    Case("pb1-config-width-text", "PB1/inference.py", EDITED, "error", r"its config: model\.base_channels must be a positive integer, got 'wide'",
         _pb1_edited(lambda c: c["model"].update(base_channels="wide"))),
    Case("pb1-config-width-huge", "PB1/inference.py", EDITED, "error", r"edited\.safetensors does not fit its own config: .*wrong shape",
         _pb1_edited(lambda c: c["model"].update(base_channels=500_000))),
    Case("pb1-config-type-unknown", "PB1/inference.py", EDITED, "error", r"its config: model\.type must be one of unet, pca_mlp, got 'transformer'",
         _pb1_edited(lambda c: c["model"].update(type="transformer"))),
    Case("pb1-config-timesteps-negative", "PB1/inference.py", EDITED, "error", r"its config: diffusion\.num_train_timesteps must be an integer 1-100000, got -5",
         _pb1_edited(lambda c: c["diffusion"].update(num_train_timesteps=-5))),
    Case("pb1-config-beta-end-5", "PB1/inference.py", EDITED, "error", r"its config: diffusion\.beta_end must be in \[beta_start, 1\), got 5",
         _pb1_edited(lambda c: c["diffusion"].update(beta_end=5))),
    Case("pb1-config-sampler-bogus", "PB1/inference.py", EDITED, "error", r"its config: sample\.sampler must be one of ddim, dpm\+\+, ddpm, got 'bogus'",
         _pb1_edited(lambda c: c["sample"].update(sampler="bogus"))),
    Case("pb1-config-no-diffusion", "PB1/inference.py", EDITED, "error", r"its config: no 'diffusion' section", _pb1_edited(lambda c: c.pop("diffusion"))),
    Case("pb1-config-no-sample", "PB1/inference.py", EDITED, "error", r"its config: no 'sample' section", _pb1_edited(lambda c: c.pop("sample"))),
    Case("pb1-config-no-model", "PB1/inference.py", EDITED, "error", r"edited\.safetensors holds no PB1 model config", _pb1_edited(lambda c: c.pop("model"))),
    Case("pb1-config-image-size-0", "PB1/inference.py", EDITED, "error", r"its config: model\.image_size must be a positive integer, got 0",
         _pb1_edited(lambda c: c["model"].update(image_size=0))),
    Case("pb1-config-guidance-nan", "PB1/inference.py", EDITED, "error", r"its config: sample\.guidance must be a finite number",
         _pb1_edited(lambda c: c["sample"].update(guidance=float("nan")))),
    Case("pb1-weights-nan", "PB1/inference.py", EDITED, "error", r"edited\.safetensors: weight .* holds NaN or infinite values", _pb1_nan),
    Case("pb1-device-mps", "PB1/inference.py", "--ckpt {pb1} --out-dir {out} --device mps", "error", r"--device mps: this project runs on auto, cpu, cuda or cuda:N, not mps"),
    Case("pb1-device-xla", "PB1/inference.py", "--ckpt {pb1} --out-dir {out} --device xla", "error", r"--device xla: this project runs on .*, not xla"),
    Case("pb1-device-ipu", "PB1/inference.py", "--ckpt {pb1} --out-dir {out} --device ipu", "error", r"--device ipu: this project runs on .*, not ipu"),
    Case("pb1-device-meta", "PB1/inference.py", "--ckpt {pb1} --out-dir {out} --device meta", "error", r"--device meta: this project runs on .*, not meta"),
    Case("pb1-device-unknown", "PB1/inference.py", "--ckpt {pb1} --out-dir {out} --device gpu0", "error", r"--device 'gpu0': expected auto, cpu, cuda or cuda:N"),
    Case("pb1-batch-size-huge", "PB1/inference.py", PB1 + " --out-dir {out} --batch-size " + HUGE, "error", r"--batch-size must be 1-65,536, got 1000000000"),
    Case("pb1-out-svhn-is-a-link", "PB1/inference.py", PB1 + " --out-dir {out} --steps 2", "error", r"output folder .*out/svhn is a symbolic link \(to .*elsewhere\)", _link("out/svhn")),
    Case("pb1-stdout-full", "PB1/inference.py", PB1 + " --out-dir {out} --steps 2", "warning", r"cannot write to standard output \(No space left on device\): carrying on",
         None, ("out/mnistm/[0-9]_001.png", "out/svhn/[0-9]_001.png"), stdout_full=True),
    Case("pb1-train-limit-0", "PB1/train.py", PB1_TRAIN.replace("--limit 8", "--limit 0") + " --out {out}", "error", r"--limit must be a positive number of images per dataset, got 0"),
    Case("pb1-train-batch-size-huge", "PB1/train.py", PB1_TRAIN + " --out {out} --batch-size " + HUGE, "error", r"train\.batch_size must be 1-65,536, got 1000000000"),
    Case("pb1-train-resume-other-width", "PB1/train.py", PB1_TRAIN + " --out {out} --resume", "error",
         r"--resume from .*checkpoint\.pt: it was written by another model or another problem's training", _resume_other("wide")),
    Case("pb1-train-resume-face-checkpoint", "PB1/train.py", PB1_TRAIN + " --out {out} --resume", "error",
         r"--resume from .*checkpoint\.pt: it was written by another model or another problem's training", _resume_other("face")),
    Case("pb2-unet-int64", "PB2/inference.py", FACE.replace("{face_unet}", "{tmp}/u.pt"), "error", r"u\.pt: weight .* holds int64 values, expected floating point",
         _face_unet(lambda t: t.long())),
    Case("pb2-unet-nan", "PB2/inference.py", FACE.replace("{face_unet}", "{tmp}/u.pt"), "error", r"u\.pt: weight .* holds NaN or infinite values", _face_unet(_first_nan)),
    Case("pb2-device-meta", "PB2/inference.py", FACE.replace("--device cpu", "--device meta"), "error", r"--device meta: this project runs on"),
    Case("pb2-batch-size-huge", "PB2/inference.py", FACE + " --batch-size " + HUGE, "error", r"--batch-size must be 0 \(all\) or 1-65,536"),
    Case("pb2-train-bomb", "PB2/train.py", "--data {tmp}/faces --out {out} --device cpu --steps 1", "error",
         r"cannot read image .*faces/bomb\.png: it is too large \(100,000,000 pixels\).*decompression bomb", _bombs("faces/bomb.png")),
    Case("pb2-train-batch-size-huge", "PB2/train.py", "--data {tmp} --out {out} --batch-size " + HUGE, "error", r"--batch-size must be 1-65,536"),
    Case("pb3-json-deep", "PB3/inference.py", SD.replace("--quiet", "--quiet --json {tmp}/deep.json"), "error", r"deep\.json is not a usable JSON file: it is nested 100000 levels deep", _deep_json),
    Case("pb3-embedding-1e30", "PB3/inference.py", "--prompt a_<zz1> --embeddings <zz1>={tmp}/e.safetensors " + SD, "error",
         r"e\.safetensors: the embedding of '<zz1>' holds values up to 1e\+30", _embedding(lambda d: torch.full((d,), 1e30))),
    Case("pb3-embedding-100-vectors", "PB3/inference.py", "--prompt a_<zz1> --embeddings <zz1>={tmp}/e.safetensors " + SD, "warning",
         r"e\.safetensors: the embedding of <zz1> has 100 vectors .*more than the 75 tokens a prompt holds", _embedding(lambda d: torch.randn(100, d) * 0.01), ("out/00.png",)),
    Case("pb3-prompt-cuts-placeholder", "PB3/inference.py", f"--prompt '{LONG_PROMPT}' --embeddings <zz1>={{tmp}}/e.safetensors " + SD, "warning",
         r"prompt 'a photo of a dog.*\.\.\.' is longer than CLIP's 77 tokens and its truncation cuts <zz1> \(1 of 1 vector\(s\)\)",
         _embedding(lambda d: torch.randn(d) * 0.01), ("out/00.png",)),
    Case("pb3-key-folder-is-a-link", "PB3/inference.py", SD_JSON, "error", r"output folder .*out/0 is a symbolic link", _pb3_json_link),
    Case("pb3-device-ipu", "PB3/inference.py", SD_JSON.replace("--device cpu", "--device ipu"), "error", r"--device ipu: this project runs on"),
    Case("pb3-batch-size-huge", "PB3/inference.py", SD_JSON.replace("--batch-size 1", "--batch-size " + HUGE), "error", r"--batch-size must be 1-65,536"),
    Case("pb3-train-bomb", "PB3/train.py", TI + " --images {tmp}/ti --token <zz1> --out {out}", "error", r"cannot read image .*ti/bomb\.png: it is too large", _bombs("ti/bomb.png")),
    Case("pb3-train-batch-size-huge", "PB3/train.py", TI_ONE + " --batch-size " + HUGE, "error", r"--batch-size must be 1-65,536"),
    Case("pb3-train-key-folder-is-a-link", "PB3/train.py", TI + " --json {input_json} --data {ti_images} --out {out}", "error", r"output folder .*out/0 is a symbolic link", _pb3_json_link),
    Case("pb3-train-checkpoint-is-a-link", "PB3/train.py", TI_ONE, "error", r"out/checkpoint\.pt is a symbolic link", _link("out/checkpoint.pt")),
    Case("zs-bomb", "PB3/zeroshot.py", ZS.replace("{zs}", "{tmp}/zs"), "error", r"cannot read image .*zs/val/1_0001\.png: it is too large", _zs_bomb),
    Case("zs-clip-header-bomb", "PB3/zeroshot.py", ZS.replace("{clip}", "{tmp}/clip"), "error",
         r"cannot load a CLIP model from .*clip: its weights file is not a usable safetensors file \(.*header too large", _clip_header_bomb),
    Case("zs-batch-size-huge", "PB3/zeroshot.py", ZS + " --batch_size " + HUGE, "error", r"--batch_size must be 1-65,536"),
    Case("grade-json-deep", "evaluation/grade_hw2_3.py", "--json_path {tmp}/deep.json --input_dir {tmp} --output_dir {tmp}", "error", r"deep\.json is not a usable JSON file: it is nested", _deep_json),
    Case("face-mse-bomb", "evaluation/face_mse.py", "{tmp}/ours {tmp}/truth", "error", r"cannot read image .*ours/bomb\.png: it is too large", _bombs("ours/bomb.png", "truth/bomb.png")),
    Case("train-classifier-limit-0", "evaluation/train_classifier.py", "--data {digits} --out {out} --limit 0", "error", r"--limit must be at least 1, got 0"),
    Case("clip-scores-batch-size-huge", "evaluation/clip_scores.py", "--images {tmp} --references {tmp} --text a --batch_size " + HUGE, "error", r"--batch_size must be 1-65,536"),
]  # fmt: skip


# ---- running a case -------------------------------------------------------------------------


@cache
def _module(script: str) -> ModuleType:
    return load_script(script, f"bad_inputs_{script.replace('/', '_').removesuffix('.py')}")


def _tree(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` (relative path -> content hash, or "dir")."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        out[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@contextlib.contextmanager
def read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make ``folder`` read-only for this process: ``chmod 555``, or for root (whom permission
    bits do not stop) a read-only bind mount, as a read-only share is mounted."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    mount = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True)
    if mount.returncode != 0 or os.access(folder, os.W_OK):  # no mount rights: the kernel's answer, faked
        if mount.returncode == 0:
            subprocess.run(["umount", str(folder)], check=True)
        real_access = os.access
        monkeypatch.setattr(
            os,
            "access",
            lambda p, mode, *a, **k: (
                False if Path(p).absolute() == folder and mode & os.W_OK else real_access(p, mode, *a, **k)
            ),
        )
        yield
        return
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


class FullStream(io.StringIO):
    """Standard output on a full device: every write fails with ENOSPC."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _stderr_lines(err: str) -> list[str]:
    """stderr as a terminal shows it, without progress bars: tqdm redraws with a carriage
    return, and a message printed after a bar it cleared is what follows the last one."""
    lines = []
    for line in err.split("\n"):
        shown = line.rsplit("\r", 1)[-1]
        if shown.strip() and ("\r" not in line or shown.startswith(("error: ", "warning: "))):
            lines.append(shown)
    return lines


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, world, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no checkpoints/ of the working directory is found by accident
    monkeypatch.setenv("PB3_EMBEDDINGS", "")
    monkeypatch.delenv("PB1_CKPT", raising=False)
    if case.setup is not None:
        case.setup(tmp_path, world)
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "keep.txt").write_text("mine")
    names = {k: str(v) for k, v in world.items()} | {"out": tmp_path / "out", "tmp": tmp_path, "ro": ro}
    argv = shlex.split(case.args.format(**names))
    before, world_before = _tree(tmp_path), _tree(world["root"])
    capsys.readouterr()

    if case.stdout_full:
        monkeypatch.setattr(sys, "stdout", FullStream())
    guard = read_only(ro, monkeypatch) if "{ro}" in case.args else contextlib.nullcontext()
    with guard, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SystemExit) as exit_info:
            module = _module(case.script)  # an entry point's FLAGS: its flags named otherwise
            run(lambda: module.main(argv), getattr(module, "FLAGS", None))
    out, err = capsys.readouterr()

    lines = _stderr_lines(err)
    assert "Traceback" not in err
    assert not world["marker"].exists(), "code from a file was run"
    assert _tree(world["root"]) == world_before
    after = _tree(tmp_path)
    if case.expect == "error":
        assert exit_info.value.code == 2, err
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert after == before, "an error left files behind"
        user_warnings = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        assert not user_warnings, user_warnings
    else:
        assert exit_info.value.code == 0, err
        assert len(lines) == 1 and lines[0].startswith("warning: "), err
        assert all(after.get(k) == v for k, v in before.items()), "a file of the user's changed"
        new = sorted(set(after) - set(before))
        written = [k for k in new if after[k] != "dir"]
        assert all(any(Path(k).match(g) for g in case.new) for k in written), written
        assert len(written) == sum(len(list(tmp_path.glob(g))) for g in case.new), "expected outputs missing"
    assert "weights_only" not in err and "\n" not in lines[0]
    assert re.search(case.pattern, lines[0]), lines[0]
