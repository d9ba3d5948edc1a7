"""The DDIM experiments (eta grid, slerp / lerp strips) and labelled panels, on toy eps functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.diffusion import lerp, slerp
from dlcv.diffusion.driver import constant_eps, sample_batches
from dlcv.figures import (
    FigureJob,
    eta_grid,
    interpolation_noises,
    interpolation_strip,
    labeled_grid,
    render_figures,
)
from dlcv.io.images import minmax_to_uint8

from .conftest import REPO
from .diffusion.test_driver import LINEAR, noises, toy_eps

#: The report's settings (PB2/experiments.py, after the course's Problem 2): rows eta = 0, 0.25, 0.5,
#: 0.75, 1; interpolation weights alpha = 0, 0.1, ..., 1.
REPORT_ETAS = ["0", "0.25", "0.5", "0.75", "1"]
REPORT_ALPHAS = ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"]


def test_the_figures_sample_and_label_the_reports_etas_and_alphas(tmp_path):
    """render_figures' defaults draw the report's figures: each row of eta_grid.png is DDIM at that
    eta, labelled with it, each column of a strip the noise interpolated at that alpha, labelled
    with it; the PNGs equal, pixel for pixel, the panels built here from the settings alone."""
    x = noises()
    eps = constant_eps(toy_eps)
    job = FigureJob(eps, eps, x, (x[0], x[1]), ["00", "01", "02", "03"])
    written = render_figures(job, tmp_path, steps=3)
    rows = [minmax_to_uint8(sample_batches(eps, x, LINEAR, eta=float(e), steps=3)) for e in REPORT_ETAS]
    expected = {"eta_grid.png": labeled_grid(torch.stack(rows), [f"eta={e}" for e in REPORT_ETAS], job.names)}
    for method, mix in (("slerp", slerp), ("lerp", lerp)):
        path = torch.stack([mix(x[0], x[1], float(a)) for a in REPORT_ALPHAS])
        strip = minmax_to_uint8(sample_batches(eps, path, LINEAR, eta=0.0, steps=3))
        expected[f"interpolation_{method}.png"] = labeled_grid(strip[None], [method], REPORT_ALPHAS)
    assert [p.name for p in written] == list(expected)
    for path in written:
        with Image.open(path) as image:
            drawn = np.asarray(image.convert("RGB"))
        assert np.array_equal(drawn, np.asarray(expected[path.name])), path.name
    doc = (REPO / "PB2" / "experiments.py").read_text()  # what the script says it draws
    assert "rows eta = 0, 0.25, 0.5, 0.75, 1" in doc and "alpha = 0, 0.1, ..., 1" in doc


def test_eta_grid_rows_are_etas_and_columns_the_noises():
    x = noises()
    grid = eta_grid(constant_eps(toy_eps), x, steps=5)
    assert grid.shape == (5, 4, 3, 8, 8) and grid.dtype == torch.uint8
    deterministic = minmax_to_uint8(sample_batches(constant_eps(toy_eps), x, LINEAR, steps=5))
    assert torch.equal(grid[0], deterministic)
    for row in range(1, 5):
        assert not torch.equal(grid[row], grid[0])


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
    strip = interpolation_strip(constant_eps(toy_eps), a, b, steps=4)
    ends = minmax_to_uint8(sample_batches(constant_eps(toy_eps), torch.stack([a, b]), LINEAR, steps=4))
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
    written = render_figures(job, tmp_path, steps=3)
    assert [p.name for p in written] == ["eta_grid.png", "interpolation_slerp.png", "interpolation_lerp.png"]
    sizes = [Image.open(p).size for p in written]
    assert sizes[0][0] > 4 * 64 and sizes[0][1] > 5 * 64  # 4 columns, 5 rows
    assert sizes[1][1] == sizes[2][1] < 2 * 64 and min(sizes[1][0], sizes[2][0]) > 11 * 64  # one row
