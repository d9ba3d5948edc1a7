"""bench/bench_ti_learns.py end to end, shrunk to seconds: world, PB3/train.py, PB3/inference.py, grading.

Too few steps for the world to draw digits, so this checks the machinery the bench's figures
rest on, not the figures: the world is trained and saved as a diffusers folder (and reused
by a second run), both tokens are learned by ``PB3/train.py`` into its own files, the images
come from ``PB3/inference.py`` at the right size, the run ends with the two lines in their
exact form and writes the grid and the rates.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys

import torch

from dlcv.io.images import load_rgb
from dlcv.stable_diffusion.embeddings import load_embedding
from dlcv.stable_diffusion.loading import load_stable_diffusion
from dlcv.stable_diffusion.textual_inversion import LEARNED_EMBEDS, init_vectors

from ..conftest import REPO


def _bench():
    spec = importlib.util.spec_from_file_location("bench_ti_learns", REPO / "bench" / "bench_ti_learns.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


TINY = dict(world_steps=6, world_batch=4, world_images=100, world_channels=(8, 16, 32), grader_steps=4,
            grader_images=200, ti_steps=3, ti_batch=2, n_images=3, sampler_steps=2)  # fmt: skip


def test_the_check_runs_end_to_end_and_reuses_its_world(tmp_path, capsys):
    bench = _bench()
    s = bench.Settings(**TINY)
    result = bench.check(tmp_path, s)
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert re.fullmatch(r"TI object: before = \d\.\d\d, after = \d\.\d\d", lines[-2]), lines[-2]
    assert re.fullmatch(r"TI style: before = \d\.\d\d, after = \d\.\d\d", lines[-1]), lines[-1]
    rates = json.loads((tmp_path / "results.json").read_text())["rates"]
    named = result["world_named_digit_rate"]
    assert sorted(named["per_digit"]) == [d for d in range(10) if d != s.held_out] and 0 <= named["rate"] <= 1
    assert any(line.startswith("world: named-digit rate ") for line in lines)
    assert rates == result["rates"]
    for when in ("before", "after"):
        for key in ("object_held_out_rate", "style_svhn_rate", "style_digit_rate"):
            assert 0.0 <= rates[when][key] <= 1.0
        assert sum(rates[when]["object_digits"]) == s.n_images
    grid = load_rgb(tmp_path / "ti_learns.png")
    assert grid.shape[1:] == (2 + 4 * 30, 2 + s.n_images * 30)  # four rows of 28x28 images, 2 px apart

    world = load_stable_diffusion(tmp_path / "world")
    assert world.config.resolution == 28 and world.config.vae_scale == s.world_pool
    for token, init, name in ((bench.OBJECT_TOKEN, bench.OBJECT_INIT, "new1"),
                              (bench.STYLE_TOKEN, bench.STYLE_INIT, "new2")):  # fmt: skip
        run = tmp_path / "ti" / name
        saved, vector = load_embedding(run / LEARNED_EMBEDS)
        assert saved == token and vector.shape == (1, 64)
        assert not torch.allclose(vector, init_vectors(world, init))  # PB3/train.py moved it
        assert (run / "checkpoint.pt").is_file() and (run / "metrics.jsonl").is_file()
        assert len(list((tmp_path / "concepts" / name).glob("*.png"))) == 5
    assert len(list((tmp_path / "samples" / "object_after").glob("*.png"))) == s.n_images

    bench.check(tmp_path, s)  # a second run reuses the world, the graders and both tokens
    again = capsys.readouterr().out
    assert "world: reusing" in again and f"{bench.OBJECT_TOKEN}: reusing" in again
    assert "grader digit" not in again
