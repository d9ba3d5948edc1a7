"""dlcv_bench/digit_world/model.py: the built autoencoder, the untrained world, its token table."""

from __future__ import annotations

import torch

from dlcv.stable_diffusion.ti_data import tokenize_captions
from dlcv_bench.digit_world import (
    build_world,
    caption,
    pixel_autoencoder,
    render_digits,
    through_autoencoder,
    token_table,
    world_config,
)


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


def test_images_through_the_worlds_autoencoder_are_what_it_can_draw():
    images = render_digits([1, 7, 3], [0, 1, 0], seed=0)
    for pool in (1, 2):
        sd = build_world(0, world_config(pool=pool))
        drawn = through_autoencoder(sd, images)
        assert drawn.dtype == torch.uint8 and drawn.shape == images.shape
        means = torch.nn.functional.avg_pool2d(images.float(), pool)
        expected = means.repeat_interleave(pool, -1).repeat_interleave(pool, -2)
        assert float((drawn.float() - expected).abs().max()) <= 1.0  # rounding to uint8
    assert not torch.equal(drawn, images)  # the 2x2 world loses the finest detail


def test_the_untrained_world_ignores_its_captions_exactly():
    sd = build_world(seed=0, config=world_config(pool=2))
    x = torch.randn(2, 3, 14, 14, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([900, 100])
    ids = [tokenize_captions(sd.tokenizer, [caption(d), caption(d, "the {}")]) for d in (3, None)]
    with torch.no_grad():
        three, generic = (sd.text_encoder(i).last_hidden_state for i in ids)
        assert not torch.allclose(three, generic)
        out = [sd.unet(x, t, encoder_hidden_states=h).sample for h in (three, generic)]
    assert torch.equal(out[0], out[1])


def test_the_token_table_is_drawn_from_the_seed_alone():
    a, b = token_table(0, (50, 4), 0.5), token_table(0, (50, 4), 0.5)
    assert torch.equal(a, b) and 0.4 < float(a.std()) < 0.6
    assert not torch.equal(a, token_table(1, (50, 4), 0.5))
