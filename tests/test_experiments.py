"""The DDIM experiments (eta grid, slerp / lerp strips) on toy eps functions and a tiny digit model."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from dlcv.diffusion import NoiseSchedule, ddim_sample, ddim_timesteps, lerp, slerp
from dlcv.digit_model import build_model, load_config
from dlcv.experiments import (
    ALPHAS,
    ETAS,
    FigureJob,
    constant_eps,
    digit_class_name,
    digit_figure_job,
    eta_grid,
    interpolation_noises,
    interpolation_strip,
    labeled_grid,
    render_figures,
    run_ddim,
)
from dlcv.imageio import minmax_to_uint8


def toy_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A smooth, timestep-dependent stand-in for a network."""
    return 0.3 * torch.tanh(x) * (t.float() / 1000)[:, None, None, None]


def noises(n: int = 4, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_constants_are_the_reports():
    assert ETAS == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert ALPHAS == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def test_run_ddim_defaults_are_the_course_convention_and_batching_is_invisible():
    x = noises()
    schedule = NoiseSchedule.linear()
    expected = ddim_sample(toy_eps, x, schedule, ddim_timesteps(50), eta=0.0, clip_x0=True)
    ours = run_ddim(constant_eps(toy_eps), x)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(run_ddim(constant_eps(toy_eps), x, batch_size=3), expected)


def test_stochastic_noise_is_seeded():
    x = noises()
    a = run_ddim(constant_eps(toy_eps), x, eta=0.5, num_steps=5, seed=3)
    b = run_ddim(constant_eps(toy_eps), x, eta=0.5, num_steps=5, seed=3)
    c = run_ddim(constant_eps(toy_eps), x, eta=0.5, num_steps=5, seed=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_eta_grid_rows_are_etas_and_columns_the_noises():
    x = noises()
    grid = eta_grid(constant_eps(toy_eps), x, num_steps=5)
    assert grid.shape == (5, 4, 3, 8, 8) and grid.dtype == torch.uint8
    deterministic = minmax_to_uint8(run_ddim(constant_eps(toy_eps), x, num_steps=5))
    assert torch.equal(grid[0], deterministic)
    for row in range(1, 5):
        assert not torch.equal(grid[row], grid[0])


def test_factories_see_which_items_they_denoise():
    seen = []

    def factory(index: torch.Tensor):
        seen.append(index.tolist())
        return toy_eps

    run_ddim(factory, noises(5), num_steps=2, batch_size=2)
    assert seen == [[0, 1], [2, 3], [4]]


def test_interpolation_noises_use_the_core_slerp_and_lerp():
    a, b = noises(2, seed=1)
    for method, mix in (("slerp", slerp), ("lerp", lerp)):
        path = interpolation_noises(a, b, method=method)
        assert path.shape == (11, 3, 8, 8)
        torch.testing.assert_close(path[0], a)
        torch.testing.assert_close(path[-1], b)
        torch.testing.assert_close(path[3], mix(a, b, 0.3))
    middle = {m: interpolation_noises(a, b, method=m)[5].norm() for m in ("slerp", "lerp")}
    assert middle["slerp"] > middle["lerp"]
    with pytest.raises(ValueError, match="unknown interpolation"):
        interpolation_noises(a, b, method="cubic")


def test_interpolation_strip_starts_and_ends_at_the_endpoints_images():
    a, b = noises(2, seed=2)
    strip = interpolation_strip(constant_eps(toy_eps), a, b, num_steps=4)
    ends = minmax_to_uint8(run_ddim(constant_eps(toy_eps), torch.stack([a, b]), num_steps=4))
    assert strip.shape == (11, 3, 8, 8)
    assert torch.equal(strip[0], ends[0]) and torch.equal(strip[-1], ends[1])


def test_labeled_grid_enlarges_small_cells_and_adds_label_margins():
    images = torch.zeros(2, 3, 3, 8, 8, dtype=torch.uint8)
    plain = labeled_grid(images)
    assert plain.size == (3 * (64 + 2) + 2, 2 * (64 + 2) + 2)  # 8 px cells enlarged x8
    labelled = labeled_grid(images, ["eta=0", "eta=1"], ["a", "b", "c"])
    assert labelled.width > plain.width and labelled.height > plain.height


def test_render_figures_writes_the_three_pngs(tmp_path):
    x = noises()
    job = FigureJob(constant_eps(toy_eps), constant_eps(toy_eps), x, (x[0], x[1]), ["00", "01", "02", "03"])
    written = render_figures(job, tmp_path, num_steps=3)
    assert [p.name for p in written] == ["eta_grid.png", "interpolation_slerp.png", "interpolation_lerp.png"]
    sizes = [Image.open(p).size for p in written]
    assert sizes[0][0] > 4 * 64 and sizes[0][1] > 5 * 64  # 4 columns, 5 rows
    assert sizes[1][1] == sizes[2][1] < 2 * 64 and min(sizes[1][0], sizes[2][0]) > 11 * 64  # one row


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
    job = digit_figure_job(model, NoiseSchedule.linear(), [3, 12, 5, 19], 7, guidance=2.0, seed=1)
    assert job.names == ["mnistm 3", "svhn 2", "mnistm 5", "svhn 9"]
    assert job.grid_noises.shape == (4, 3, 28, 28)
    again = digit_figure_job(model, NoiseSchedule.linear(), [0, 1, 2, 3], 0, 2.0, seed=1)
    assert torch.equal(job.grid_noises, again.grid_noises)  # seeded
    torch.testing.assert_close(job.endpoints[0], job.grid_noises[0])
    with torch.no_grad():
        job.grid_eps(torch.tensor([1, 2]))(job.grid_noises[1:3], torch.tensor([5, 5]))
        job.interp_eps(torch.tensor([0, 1, 2]))(job.grid_noises[:3], torch.tensor([5, 5, 5]))
    null = model.null_class
    assert calls == [[null, null, 12, 5], [null, null, null, 7, 7, 7]]  # unconditional half first
    assert digit_class_name(4, 10) == "class 4"
