"""The Textual Inversion world: identity autoencoder, captions without a held-out word, loading."""

from __future__ import annotations

import torch

from dlcv.stable_diffusion.digit_world import (
    DIGIT_WORDS,
    WORLD_TEMPLATES,
    build_world,
    caption,
    caption_bank,
    pixel_autoencoder,
    save_world,
    world_config,
    world_data,
)
from dlcv.stable_diffusion.loading import load_stable_diffusion


def test_the_autoencoder_is_the_identity():
    vae = pixel_autoencoder(world_config())
    x = torch.rand(3, 3, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        posterior = vae.encode(x).latent_dist
        assert float((posterior.mean - x).abs().max()) < 1e-5
        assert float(posterior.std.max()) < 1e-6
        z = 1.7 * x  # sampled latents leave [-1, 1]: still the identity
        assert float((vae.decode(z).sample - z).abs().max()) < 1e-4


def test_the_pooling_autoencoder_takes_2x2_means_and_repeats_them():
    vae = pixel_autoencoder(world_config(pool=2))
    x = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean
        assert z.shape == (2, 3, 14, 14)
        assert float((z - torch.nn.functional.avg_pool2d(x, 2)).abs().max()) < 1e-5
        back = vae.decode(1.7 * z).sample
        assert float((back - (1.7 * z).repeat_interleave(2, -1).repeat_interleave(2, -2)).abs().max()) < 1e-4


def test_captions_name_digits_but_never_the_held_out_one_nor_a_style():
    data = world_data(400, held_out=7, seed=0)
    assert data.generic[data.digits == 7].all()
    named = ~data.generic
    assert 0.3 < float(named[data.digits != 7].float().mean()) < 0.7
    assert set(data.styles.tolist()) == {0, 1} and data.images.shape == (400, 3, 28, 28)
    assert caption(3) == "a photo of a digit three" and caption(None) == "a photo of a digit"
    drawn = [None, *(d for d in range(10) if d != 7)]  # the captions training can draw
    words = {w for t in WORLD_TEMPLATES for d in drawn for w in caption(d, t).split()}
    assert DIGIT_WORDS[7] not in words and DIGIT_WORDS[3] in words
    assert not words & {"svhn", "mnist", "style", "printed", "handwritten", "colour", "color"}
    from dlcv.clip_tokenizer import offline_clip_tokenizer

    tokenizer = offline_clip_tokenizer()
    bank = caption_bank(tokenizer, held_out=7)
    seven = tokenizer("seven", add_special_tokens=False).input_ids[0]
    assert bank["named"].shape[:2] == (10, len(WORLD_TEMPLATES))
    assert not (bank["generic"] == seven).any() and (bank["named"][7] == seven).any()  # row 7 is never drawn


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



def test_the_untrained_world_ignores_its_captions_exactly():
    sd = build_world(seed=0, config=world_config(pool=2))
    x = torch.randn(2, 3, 14, 14, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([900, 100])
    ids = caption_bank(sd.tokenizer, held_out=7)
    with torch.no_grad():
        three = sd.text_encoder(ids["named"][3, :2]).last_hidden_state
        generic = sd.text_encoder(ids["generic"][:2]).last_hidden_state
        assert not torch.allclose(three, generic)
        out = [sd.unet(x, t, encoder_hidden_states=h).sample for h in (three, generic)]
    assert torch.equal(out[0], out[1])
