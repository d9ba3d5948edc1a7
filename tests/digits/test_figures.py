"""Problem 1's figures: the reverse process's frames and the DDIM experiments' digit job."""

from __future__ import annotations

import torch

from dlcv.diffusion import NoiseSchedule
from dlcv.digits.figures import digit_class_name, digit_figure_job, reverse_timesteps
from dlcv.digits.model import build_model, load_config
from dlcv.digits.sampling import SampleSettings


def test_reverse_timesteps_start_at_noise_and_end_with_the_result():
    schedule = NoiseSchedule.linear()
    assert reverse_timesteps("ddim", 50, schedule) == [981, 741, 501, 241, 1, -1]
    assert reverse_timesteps("ddpm", 0, schedule)[0] == 999


def test_digit_job_conditions_each_column_on_its_label_with_guidance():
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    calls = []
    real_forward = model.forward

    def spy(x, t, y):
        calls.append(y.tolist())
        return real_forward(x, t, y)

    model.forward = spy
    settings = SampleSettings(guidance=2.0)
    job = digit_figure_job(model, NoiseSchedule.linear(), [3, 12, 5, 19], 7, settings, seed=1)
    assert job.names == ["mnistm 3", "svhn 2", "mnistm 5", "svhn 9"]
    assert job.grid_noises.shape == (4, 3, 28, 28)
    again = digit_figure_job(model, NoiseSchedule.linear(), [0, 1, 2, 3], 0, SampleSettings(), seed=1)
    assert torch.equal(job.grid_noises, again.grid_noises)  # seeded
    torch.testing.assert_close(job.endpoints[0], job.grid_noises[0])
    with torch.no_grad():
        job.grid_eps(torch.tensor([1, 2]))(job.grid_noises[1:3], torch.tensor([5, 5]))
        job.interp_eps(torch.tensor([0, 1, 2]))(job.grid_noises[:3], torch.tensor([5, 5, 5]))
    null = model.null_class
    assert calls == [[null, null, 12, 5], [null, null, null, 7, 7, 7]]  # unconditional half first
    assert digit_class_name(4, 10) == "class 4"
