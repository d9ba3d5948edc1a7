"""dlcv_bench/sd_memory.py against dlcv.stable_diffusion.memory: the recorded full-size check is the
estimator's current output within the tolerance, and on a small model of SD's layout the measured
peaks grow with batch and resolution no faster than the estimates (so a bound that holds at the
recorded shapes holds beyond them) and, for training, about as fast."""

from __future__ import annotations

import json

import pytest
import torch

from dlcv.stable_diffusion.memory import sampling_parts, working_bytes
from dlcv_bench.render import RESULTS
from dlcv_bench.sd_memory import TOLERANCE, peak_tensor_bytes, probe_token, sampling_steps, training_step

FP32 = torch.float32


def test_the_recorded_check_is_the_estimators_current_output_within_the_tolerance():
    """docs/results/sd_memory_check.json (bench/sd_memory_check.py, full-size SD v1): every recorded
    estimate is what the estimator says today, and every measured peak is within the tolerance of it
    (changing the estimator's constants without rerunning the bench fails here)."""
    data = json.loads((RESULTS / "sd_memory_check.json").read_text())
    assert data["model"].startswith("SD v1 (full size)") and data["dtype"] == "float32"
    assert data["tolerance"] == list(TOLERANCE) and data["held"]
    steps = {row["step"] for row in data["rows"]}
    assert steps == {"sampling: unet", "sampling: vae", "textual inversion"}
    assert max(row["resolution"] for row in data["rows"]) == 512
    for row in data["rows"]:
        batch, resolution = row["batch"], row["resolution"]
        if row["step"] == "textual inversion":
            estimate = working_bytes(batch, resolution, FP32, training=True)
        else:
            unet, vae = sampling_parts(batch, resolution, FP32)
            estimate = unet if row["step"] == "sampling: unet" else vae
        assert row["estimate_bytes"] == estimate, row
        assert TOLERANCE[0] <= row["tensor_bytes"] / estimate <= TOLERANCE[1], row


def test_peak_tensor_bytes_counts_what_is_alive_at_once():
    a = torch.ones(1000, 1000)

    def step() -> None:
        b = a * 2  # 4 MB
        c = b * 2  # 4 MB more: 8 MB alive
        del b
        d = torch.ones(3000, 1000)  # 12 MB with c: the peak
        del c, d

    assert peak_tensor_bytes(step) == pytest.approx(16e6, rel=0.01)


@pytest.fixture(scope="module")
def small_sd():
    """A random model of SD v1's block layout (4 levels, 2 layers each) at narrow widths, fp32."""
    from dlcv.stable_diffusion.config import tiny_config
    from dlcv.stable_diffusion.tiny import build_tiny_sd

    return build_tiny_sd(seed=0, config=tiny_config(channels=(32, 64, 128, 128), layers_per_block=2))


def _peak(step) -> int:
    step()  # warm-up: one-time buffers first
    return peak_tensor_bytes(step)


def test_measured_peaks_grow_no_faster_than_the_estimates(small_sd):
    """Doubling the batch and the image side: the guided UNet forward's and the Textual Inversion
    step's measured peaks grow at most as the estimator's (x2, x4; 10% slack), and the training peak,
    saved activations proportional to batch x pixels, at least 70% as fast."""
    from dlcv.stable_diffusion.generation import prepare_for_inference
    from dlcv.stable_diffusion.textual_inversion import prepare_for_training

    torch.set_num_threads(1)
    shapes = ((1, 64), (2, 64), (1, 128))
    prepare_for_inference(small_sd, torch.device("cpu"))
    sampling = [_peak(sampling_steps(small_sd, b, r)["unet"]) for b, r in shapes]
    prepare_for_training(small_sd, torch.device("cpu"), FP32)
    net = probe_token(small_sd)
    training = [_peak(training_step(net, b, r)) for b, r in shapes]
    estimated = {
        "sampling": [sampling_parts(b, r, FP32)[0] for b, r in shapes],
        "training": [working_bytes(b, r, FP32, training=True) for b, r in shapes],
    }
    for kind, measured in (("sampling", sampling), ("training", training)):
        est = estimated[kind]
        for i in (1, 2):  # batch 2, then twice the side
            growth, estimated_growth = measured[i] / measured[0], est[i] / est[0]
            assert 1.0 < growth <= 1.1 * estimated_growth, (kind, shapes[i], measured)
            if kind == "training":
                assert growth >= 0.7 * estimated_growth, (kind, shapes[i], measured)


def test_the_readmes_default_figures_are_the_estimators_current_output():
    """docs/results/sd_memory_defaults.json (the README's 5.5 / 8.1 GB) is what the estimator gives at
    the course jobs' defaults today, and both jobs fit the course's limit by it."""
    from dlcv_bench.sd_memory import course_defaults

    recorded = json.loads((RESULTS / "sd_memory_defaults.json").read_text())
    now = course_defaults()
    assert {key: recorded[key] for key in now} == now
    for job in ("generation", "training"):
        assert now[job]["total_bytes"] < now["limit_bytes"]
