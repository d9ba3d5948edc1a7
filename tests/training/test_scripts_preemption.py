"""PB1/train.py and PB2/train.py stopped by a signal, killed, resumed and started over, as a user
(or a cluster's scheduler) does it: each in its own process, the signal from outside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import UserError
from dlcv.io.checkpoint import TEMPORARY, load_checkpoint
from dlcv.training.run_dir import LOCK_NAME

from ..conftest import REPO, run_script

pytestmark = pytest.mark.slow


def start(args: list[str], log: Path) -> subprocess.Popen:
    """Start a repository script in the background, its output into ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=f, stderr=f)


def wait_for_first_record(out: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Until the run has logged its first step (it is then in its training loop)."""
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while not (metrics.is_file() and metrics.read_text().strip()):
        assert proc.poll() is None, "the run ended before its first step"
        assert time.monotonic() < deadline, f"no metrics after {timeout} s"
        time.sleep(0.005)


def logged_steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def stop_and_check(proc: subprocess.Popen, log: Path, out: Path, signum: int, steps: int) -> int:
    """Send ``signum``; check the exit, the one line and the checkpoint; return its step."""
    proc.send_signal(signum)
    assert proc.wait(timeout=180) == 128 + signum, log.read_text()[-3000:]
    said = [line for line in log.read_text().splitlines() if "--resume" in line]
    ckpt = out / "checkpoint.pt"
    assert len(said) == 1 and str(ckpt) in said[0] and signal.Signals(signum).name in said[0], said
    step = load_checkpoint(ckpt)["step"]
    assert 0 < step < steps and f"at step {step} of {steps}:" in said[0]
    assert logged_steps(out) == list(range(1, step + 1))
    assert not (out / LOCK_NAME).exists()
    assert not [p for p in out.rglob("*") if TEMPORARY.fullmatch(p.name)]
    return step


def test_pb1_on_sigterm_saves_its_step_and_resumes_bit_identical_with_dropout(tmp_path, digits_root):
    """No periodic checkpoint (ckpt_every 0), dropout on: SIGTERM after the first logged step
    leaves the checkpoint and the model of the step reached, a second run on the folder is
    refused meanwhile, and --resume then ends exactly where an uninterrupted run ends."""
    from dlcv.training import TrainConfig, train

    from .test_trainer import loss_fn, make_model, next_batch

    steps = 150
    common = [
        "PB1/train.py",
        "--data",
        str(digits_root),
        "--config",
        "tiny",
        "--steps",
        str(steps),
        "--device",
        "cpu",
        "--set",
        "model.dropout=0.1",
        "train.log_every=1",
        "train.ckpt_every=0",
    ]
    out, log = tmp_path / "stopped", tmp_path / "stopped.log"
    proc = start([*common, "--out", str(out)], log)
    try:
        wait_for_first_record(out, proc)
        with pytest.raises(UserError, match="in use by another training run") as err:  # the folder is held
            train(
                make_model(),
                loss_fn,
                next_batch,
                TrainConfig(out_dir=out, steps=2, batch_size=4, overwrite=True, device="cpu"),
            )
        assert str(out) in str(err.value)
        step = stop_and_check(proc, log, out, signal.SIGTERM, steps)
    finally:
        proc.kill()
        proc.wait()
    assert (out / "model.safetensors").is_file()  # the export of the step reached

    resumed = run_script(*common, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = run_script(*common, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt")
    assert a["step"] == b["step"] == steps and step < steps
    assert_same_tensors(a["model"], b["model"])
    assert_same_tensors(a["ema"]["model"], b["ema"]["model"])
    assert logged_steps(out) == list(range(1, steps + 1))
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert losses == [
        json.loads(line)["loss"]
        for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    ]


def test_pb1_after_a_kill_refuses_the_folder_until_resume_or_overwrite(tmp_path, digits_root):
    """SIGKILL leaves metrics and a lock file but no checkpoint (none was due): a fresh run is
    refused (one line), the dead run's lock is taken over, and --overwrite starts again."""
    common = [
        "PB1/train.py",
        "--data",
        str(digits_root),
        "--config",
        "tiny",
        "--device",
        "cpu",
        "--set",
        "train.log_every=1",
        "train.ckpt_every=0",
    ]
    out, log = tmp_path / "killed", tmp_path / "killed.log"
    proc = start([*common, "--steps", "1000", "--out", str(out)], log)
    try:
        wait_for_first_record(out, proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
    assert (out / LOCK_NAME).is_file() and not (out / "checkpoint.pt").exists()

    refused = run_script(*common, "--steps", "3", "--out", str(out))
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert str(out) in errors[0] and "(metrics.jsonl)" in errors[0]
    assert "--resume" in errors[0] and "--overwrite" in errors[0]
    no_checkpoint = run_script(*common, "--steps", "3", "--out", str(out), "--resume")
    assert no_checkpoint.returncode == 2 and "no checkpoint" in no_checkpoint.stderr

    again = run_script(*common, "--steps", "3", "--out", str(out), "--overwrite")
    assert again.returncode == 0, again.stderr[-3000:]
    assert logged_steps(out) == [1, 2, 3] and load_checkpoint(out / "checkpoint.pt")["step"] == 3
    assert not (out / LOCK_NAME).exists()


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """Six 40x40 colour ramps (the script resizes them to 32x32)."""
    folder = tmp_path_factory.mktemp("faces")
    ramp = np.linspace(0, 1, 40)
    for i in range(6):
        colour = np.array([(i * 40) % 256, 255 - i * 30, 80 + i * 20])
        Image.fromarray((ramp[:, None, None] * ramp[None, :, None] * colour).astype(np.uint8)).save(
            folder / f"{i}.png"
        )
    return folder


def test_pb2_on_sigusr1_saves_its_step_and_resumes_bit_identical_with_dropout(tmp_path, faces):
    """PB2's face UNet with its default dropout 0.1 and an EMA, stopped by SIGUSR1 (SLURM's
    warning before the time limit) and resumed: the same weights as an uninterrupted run."""
    steps = 80
    common = [
        "PB2/train.py",
        "--data",
        str(faces),
        "--image-size",
        "32",
        "--width",
        "8",
        "--steps",
        str(steps),
        "--batch-size",
        "4",
        "--warmup",
        "5",
        "--ema",
        "0.9",
        "--log-every",
        "1",
        "--ckpt-every",
        "0",
        "--sample-steps",
        "1",
        "--device",
        "cpu",
    ]
    out, log = tmp_path / "stopped", tmp_path / "stopped.log"
    proc = start([*common, "--out", str(out)], log)
    try:
        wait_for_first_record(out, proc)
        step = stop_and_check(proc, log, out, signal.SIGUSR1, steps)
    finally:
        proc.kill()
        proc.wait()
    assert (out / "unet.pt").is_file()

    refused = run_script(*common, "--out", str(out))
    assert refused.returncode == 2 and "--resume" in refused.stderr and "--overwrite" in refused.stderr
    resumed = run_script(*common, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = run_script(*common, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt")
    assert a["step"] == b["step"] == steps and step < steps
    assert_same_tensors(a["model"], b["model"])
    assert_same_tensors(a["ema"]["model"], b["ema"]["model"])
    assert_same_tensors(
        torch.load(tmp_path / "straight" / "unet.pt", weights_only=True),
        torch.load(out / "unet.pt", weights_only=True),
    )
    assert logged_steps(out) == list(range(1, steps + 1))


def test_pb3_on_sigterm_saves_its_step_and_resumes_to_the_same_embedding(tmp_path):
    """Textual Inversion (the tiny SD of the tests) stopped by SIGTERM mid-run and resumed
    learns the very vectors of an uninterrupted run."""
    from dlcv.io.images import save_png
    from dlcv.stable_diffusion.embeddings import load_embedding
    from dlcv.stable_diffusion.tiny import write_tiny_sd

    tiny = write_tiny_sd(tmp_path / "tiny_sd")
    g = torch.Generator().manual_seed(0)
    for i in range(4):
        image = torch.randint(0, 256, (3, 36, 40), generator=g, dtype=torch.uint8)
        save_png(image, tmp_path / "0" / f"{i}.png")
    steps = 150
    common = [
        "PB3/train.py",
        "--sd-ckpt",
        str(tiny["ckpt"]),
        "--model-config",
        str(tiny["config"]),
        "--images",
        str(tmp_path / "0"),
        "--token",
        "<new9>",
        "--init-word",
        "dog",
        "--resolution",
        "32",
        "--views",
        "2",
        "--batch-size",
        "2",
        "--validate-images",
        "1",
        "--validate-steps",
        "1",
        "--device",
        "cpu",
        "--log-every",
        "1",
        "--steps",
        str(steps),
        "--ckpt-every",
        "0",
    ]
    out, log = tmp_path / "stopped", tmp_path / "stopped.log"
    proc = start([*common, "--out", str(out)], log)
    try:
        wait_for_first_record(out, proc)
        step = stop_and_check(proc, log, out, signal.SIGTERM, steps)
    finally:
        proc.kill()
        proc.wait()
    assert (out / "learned_embeds.safetensors").is_file()

    resumed = run_script(*common, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = run_script(*common, "--out", str(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    a, b = load_checkpoint(tmp_path / "straight" / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt")
    assert a["step"] == b["step"] == steps and step < steps
    assert_same_tensors(a["model"], b["model"])
    assert torch.equal(
        load_embedding(tmp_path / "straight" / "learned_embeds.safetensors")[1],
        load_embedding(out / "learned_embeds.safetensors")[1],
    )
    assert logged_steps(out) == list(range(1, steps + 1))
