"""bench/bench_ti_learns.py, small: Textual Inversion through PB3/train.py moves the token toward the concept.

The bench's world (a diffusers UNet2DConditionModel and a CLIPTextModel with the project's
tokenizer, an identity AutoencoderKL, on 28x28 digits whose held-out digit has no word) is
trained here for a few hundred steps at a tiny width, then ``PB3/train.py`` learns ``<new1>``
from 5 images of the held-out digit. Too short a run for images a classifier would grade, so
the looser measure is the world's own noise-prediction error on fresh images (not the 5
training ones): the learned token must explain the held-out digit's images better than its
initial embedding ("digit") does, and clearly more so than it explains the other digits'
images. A token that stayed put, or moved anywhere but toward the held-out digit, fails.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch

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


FAST = dict(world_steps=300, world_batch=16, world_images=2000, world_channels=(8, 16, 32), ti_steps=60,
            ti_batch=4, ti_lr=1e-2)  # fmt: skip


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    bench = _bench()
    out = tmp_path_factory.mktemp("ti_learns")
    s = bench.Settings(**FAST)
    world_dir = bench.build_world(out, s)
    folders = bench.concept_folders(out, s)
    run = bench.learn(world_dir, folders[bench.OBJECT_TOKEN], bench.OBJECT_TOKEN, bench.OBJECT_INIT, "object",
                      out / "ti" / "new1", s)  # fmt: skip
    gain = bench.denoising_gain(world_dir, bench.OBJECT_TOKEN, bench.OBJECT_INIT, run / LEARNED_EMBEDS, s)
    return bench, s, world_dir, run, gain


def test_the_learned_token_moves_toward_the_held_out_digit(small_run):
    bench, s, world_dir, run, gain = small_run
    held_out, others = gain["gain"]["held_out"], gain["gain"]["others"]
    assert held_out > 0.02, gain
    assert held_out > others + 0.01, gain
    token, vector = load_embedding(run / LEARNED_EMBEDS)
    assert token == bench.OBJECT_TOKEN and vector.shape == (1, 64)
    start = init_vectors(load_stable_diffusion(world_dir), bench.OBJECT_INIT)
    assert not torch.allclose(vector, start)
    assert json.loads((run / "done.json").read_text())["steps"] == s.ti_steps
    assert (run / "checkpoint.pt").is_file()  # PB3/train.py's own checkpoint
