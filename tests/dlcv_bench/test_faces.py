"""dlcv_bench/faces.py: the two DDIM loops the benches compare agree, and the random UNet loads."""

from __future__ import annotations

import torch

from dlcv.faces.ddim import load_face_unet
from dlcv_bench.faces import core_loop, diffusers_loop, random_unet


def test_the_core_and_the_diffusers_loop_agree():
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    eps_fn = lambda x, t: 0.1 * x + 1e-4 * t.float()[:, None, None, None]  # noqa: E731
    ours, theirs = core_loop(eps_fn, x.clone()), diffusers_loop(eps_fn, x.clone())
    assert float((ours - theirs).abs().max()) < 1e-4 and not torch.equal(ours, x)


def test_the_random_unet_is_a_course_state_dict_with_a_small_output_layer(tmp_path):
    random_unet(8, tmp_path / "unet.pt")
    model = load_face_unet(tmp_path / "unet.pt")
    assert model.base_channels == 8
    assert float(model.out[2].weight.detach().abs().max()) < 0.01
