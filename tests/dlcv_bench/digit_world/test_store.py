"""dlcv_bench/digit_world/store.py: a world folder loads like SD; the shipped form loads back."""

from __future__ import annotations

import torch

from dlcv.stable_diffusion.loading import load_stable_diffusion
from dlcv_bench.digit_world import (
    build_world,
    export_world,
    load_shipped_world,
    save_world,
    world_config,
)


def test_the_world_loads_like_stable_diffusion(tmp_path):
    sd = build_world(seed=0)
    folder = save_world(sd, tmp_path / "world")
    loaded = load_stable_diffusion(folder)
    c = loaded.config
    assert c.resolution == 28 and c.vae_scale == 1 and c.latent_channels == 3
    assert loaded.config.scaling_factor == 1.0
    x = torch.rand(1, 3, 28, 28) * 2 - 1
    with torch.no_grad():
        assert float((loaded.vae.decode(loaded.vae.encode(x).latent_dist.mean).sample - x).abs().max()) < 1e-4
    for a, b in zip(sd.unet.state_dict().values(), loaded.unet.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_an_exported_world_loads_back_with_the_same_weights(tmp_path):
    arch = {"channels": [8, 16, 32], "attention_levels": 1, "pool": 2}
    sd = build_world(seed=3, config=world_config(**arch))
    with torch.no_grad():
        for p in sd.unet.parameters():  # as if trained: the zeroed caption paths too
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    export_world(sd, tmp_path / "w", {"seed": 3, "architecture": arch, "training": {"steps": 1}})
    assert {p.name for p in (tmp_path / "w").iterdir()} == {
        "unet.safetensors",
        "text_encoder.safetensors",
        "world.json",
    }
    back, info = load_shipped_world(tmp_path / "w")
    assert info["training"] == {"steps": 1}
    for a, b in zip(sd.unet.state_dict().values(), back.unet.state_dict().values(), strict=True):
        assert b.dtype == torch.float32 and torch.allclose(a, b, rtol=1e-3, atol=1e-4)  # stored as float16
    text = zip(sd.text_encoder.state_dict().values(), back.text_encoder.state_dict().values(), strict=True)
    for a, b in text:
        assert torch.equal(a, b)  # the token table redrawn from the seed, the rest stored
    other = build_world(seed=4, config=world_config(**arch)).text_encoder.get_input_embeddings().weight
    assert not torch.equal(other, back.text_encoder.get_input_embeddings().weight)
