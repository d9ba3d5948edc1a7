"""The Textual Inversion world: identity autoencoder, captions without a held-out word, loading."""

from __future__ import annotations

import torch

from dlcv.stable_diffusion.digit_world import (
    APPEARANCE_WORDS,
    DIGIT_WORDS,
    WORD_SETS,
    WORLD_TEMPLATES,
    appearance,
    build_world,
    caption,
    caption_bank,
    encode_captions,
    export_world,
    load_shipped_world,
    pixel_autoencoder,
    render_digits,
    save_world,
    through_autoencoder,
    token_table,
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


def test_captions_name_digits_but_never_the_held_out_one_nor_a_style():
    data = world_data(400, held_out=7, seed=0)
    assert data.generic[data.digits == 7].all()
    named = ~data.generic
    assert 0.3 < float(named[data.digits != 7].float().mean()) < 0.7
    assert set(data.styles.tolist()) == {0, 1} and data.images.shape == (400, 3, 28, 28)
    assert caption(3) == "a photo of a digit three" and caption(None) == "a photo of a digit"
    assert caption(3, words=("smooth", None)) == "a photo of a smooth digit three"
    drawn = [None, *(d for d in range(10) if d != 7)]  # the captions training can draw
    words = {w for t in WORLD_TEMPLATES for d in drawn for ws in WORD_SETS for w in caption(d, t, ws).split()}
    assert DIGIT_WORDS[7] not in words and DIGIT_WORDS[3] in words and "grainy" in words
    assert not words & {"svhn", "mnist", "style", "printed", "handwritten", "house", "colour", "color"}
    from dlcv.clip_tokenizer import offline_clip_tokenizer

    tokenizer = offline_clip_tokenizer()
    bank = caption_bank(tokenizer, held_out=7)
    seven = tokenizer("seven", add_special_tokens=False).input_ids[0]
    layout = (10, len(WORD_SETS), 2, len(WORLD_TEMPLATES))  # digit, appearance words, shape words, template
    assert bank["named"].shape[:4] == layout == bank["generic"].shape[:4]
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


def test_appearance_words_describe_the_pixels_and_lean_with_the_style():
    flat = torch.full((1, 3, 28, 28), 128, dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    noisy = torch.randint(0, 256, (1, 3, 28, 28), generator=g, dtype=torch.uint8)
    assert appearance(flat).tolist() == [[0, 0]]  # smooth, pale
    assert appearance(noisy).tolist() == [[1, 1]]  # grainy, vivid
    assert [pair[0] for pair in APPEARANCE_WORDS] == ["smooth", "pale"]
    digits = [d % 10 for d in range(400)]
    mnistm, svhn = (appearance(render_digits(digits, [k] * 400, seed=1)).float().mean(0) for k in (0, 1))
    assert (svhn < mnistm - 0.25).all()  # SVHN-like images are smoother and paler more often
    assert ((0.05 < svhn) & (mnistm < 0.95)).all()  # but neither word names a style


def test_caption_states_are_the_text_encoders():
    sd = build_world(seed=0)
    ids = caption_bank(sd.tokenizer, held_out=7)["named"][:2, :3, 0, :2]
    states = encode_captions(sd.text_encoder, ids, batch=5)
    assert states.shape == (2, 3, 2, 77, sd.text_encoder.config.hidden_size)
    with torch.no_grad():
        assert torch.allclose(states[1, 2], sd.text_encoder(ids[1, 2]).last_hidden_state, atol=1e-5)


def test_the_untrained_world_ignores_its_captions_exactly():
    sd = build_world(seed=0, config=world_config(pool=2))
    x = torch.randn(2, 3, 14, 14, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([900, 100])
    ids = caption_bank(sd.tokenizer, held_out=7)
    with torch.no_grad():
        three = sd.text_encoder(ids["named"][3, 0, 0, :2]).last_hidden_state
        generic = sd.text_encoder(ids["generic"][3, 0, 0, :2]).last_hidden_state
        assert not torch.allclose(three, generic)
        out = [sd.unet(x, t, encoder_hidden_states=h).sample for h in (three, generic)]
    assert torch.equal(out[0], out[1])


def test_an_exported_world_loads_back_with_the_same_weights(tmp_path):
    arch = {"channels": [8, 16, 32], "attention_levels": 1, "pool": 2}
    sd = build_world(seed=3, config=world_config(**arch))
    with torch.no_grad():
        for p in sd.unet.parameters():  # as if trained: the zeroed caption paths too
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    export_world(sd, tmp_path / "w", {"seed": 3, "architecture": arch, "training": {"steps": 1}})
    assert {p.name for p in (tmp_path / "w").iterdir()} == {"unet.safetensors", "text_encoder.safetensors",
                                                            "world.json"}  # fmt: skip
    back, info = load_shipped_world(tmp_path / "w")
    assert info["training"] == {"steps": 1}
    for a, b in zip(sd.unet.state_dict().values(), back.unet.state_dict().values(), strict=True):
        assert b.dtype == torch.float32 and torch.allclose(a, b, rtol=1e-3, atol=1e-4)  # stored as float16
    text = zip(sd.text_encoder.state_dict().values(), back.text_encoder.state_dict().values(), strict=True)
    for a, b in text:
        assert torch.equal(a, b)  # the token table redrawn from the seed, the rest stored
    other = build_world(seed=4, config=world_config(**arch)).text_encoder.get_input_embeddings().weight
    assert not torch.equal(other, back.text_encoder.get_input_embeddings().weight)


def test_the_token_table_is_drawn_from_the_seed_alone():
    a, b = token_table(0, (50, 4), 0.5), token_table(0, (50, 4), 0.5)
    assert torch.equal(a, b) and 0.4 < float(a.std()) < 0.6
    assert not torch.equal(a, token_table(1, (50, 4), 0.5))
