"""``dlcv.digits.course.hw2_1`` and the jobs beside it: every job that samples a Problem 1 model
samples it with the settings ``hw2_1.sh`` resolves for it, eta included."""

from __future__ import annotations

import pytest
import torch

from dlcv.cli import ArgumentError
from dlcv.digits import course, figures, sampling
from dlcv.digits.model import build_model, export_model, load_config, load_for_sampling
from dlcv.digits.sampling import SampleRequest, SampleSettings

SETTINGS = ("sampler", "steps", "guidance", "eta", "guidance_interval")


@pytest.fixture
def sde_model(tmp_path):
    """A random tiny PB1 model whose own sampler is the stochastic DPM-Solver++ (eta 1)."""
    sample = ["sample.sampler=dpm++", "sample.steps=3", "sample.guidance=4.0", "sample.eta=1.0"]
    cfg = load_config("tiny", sample)
    torch.manual_seed(0)
    return export_model(build_model(cfg), tmp_path / "model", cfg)


def _record(monkeypatch, module):
    """Replace ``module.sample_labels`` by a recorder of its settings (images: zeros)."""
    seen = []

    def fake(model, schedule, labels, **kwargs):
        seen.append({k: kwargs[k] for k in SETTINGS})
        callback = kwargs.get("callback")
        if callback is not None:  # the reverse process's frames
            for t in callback.timesteps:
                callback(t, torch.zeros(len(labels), *model.latent_shape))
        return torch.zeros(len(labels), 3, 28, 28, dtype=torch.uint8)

    monkeypatch.setattr(module, "sample_labels", fake)
    return seen


@pytest.mark.parametrize("request_", [SampleRequest(), SampleRequest(steps=2, eta=0.5, guidance=1.5)])
def test_the_report_draws_with_the_settings_hw2_1_uses(sde_model, tmp_path, monkeypatch, request_):
    course_calls = _record(monkeypatch, sampling)  # sample_course_set's sampler
    report_calls = _record(monkeypatch, figures)
    course.hw2_1(tmp_path / "out", sde_model, request=request_, n_per_digit=1, device="cpu", progress=False)
    figures.report_figures(
        tmp_path / "fig", sde_model, request=request_, scale=1, device="cpu", progress=False
    )
    expected = request_.settings(load_for_sampling(sde_model).config)
    assert course_calls == [{k: getattr(expected, k) for k in SETTINGS}]
    assert report_calls == course_calls * 2  # one grid per dataset, each with hw2_1.sh's settings
    if request_ == SampleRequest():
        assert expected == SampleSettings(sampler="dpm++", steps=3, guidance=4.0, eta=1.0)


def test_hw2_1_refuses_bad_settings_before_writing(sde_model, tmp_path):
    out = tmp_path / "out"
    for kwargs, message in (
        ({"n_per_digit": 0}, "`n_per_digit` must be 1-999"),
        ({"request": SampleRequest(eta=-1.0)}, "`eta` must be 0 or more"),
        ({"request": SampleRequest(steps=0)}, "`steps` must be 1-1000"),
    ):
        with pytest.raises(ArgumentError, match=message):
            course.hw2_1(out, sde_model, device="cpu", **kwargs)
    assert not out.exists()


def test_the_digit_experiments_use_the_models_guidance_and_steps(sde_model, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(figures, "render_figures", lambda job, out, **kw: seen.append((job, kw)) or [])
    figures.digit_experiments(tmp_path / "o", sde_model, device="cpu", progress=False)
    figures.digit_experiments(tmp_path / "o", sde_model, request=SampleRequest(steps=2), device="cpu")
    assert [kw["steps"] for _, kw in seen] == [3, 2]
    with pytest.raises(ArgumentError, match="`labels`: expected 4 class labels in 0..19"):
        figures.digit_experiments(tmp_path / "o", sde_model, labels=[0, 1, 20, 3], device="cpu")
    with pytest.raises(ArgumentError, match="`labels`: expected comma-separated integers"):
        figures.parse_labels("0,x")
