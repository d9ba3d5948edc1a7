"""The Textual Inversion world: identity autoencoder, captions without a held-out word, loading."""

from __future__ import annotations

import torch

from dlcv.stable_diffusion.digit_world import (
    APPEARANCE_WORDS,
    DESCRIPTIONS,
    DIGIT_WORDS,
    SHAPE_WORDS,
    WORLD_TEMPLATES,
    appearance,
    build_world,
    caption,
    export_world,
    filler_words,
    load_shipped_world,
    pixel_autoencoder,
    render_digits,
    save_world,
    shape,
    through_autoencoder,
    token_table,
    world_captions,
    world_config,
    world_data,
)
from dlcv.stable_diffusion.loading import load_stable_diffusion
from dlcv.stable_diffusion.ti_data import tokenize_captions


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
    assert data.words.shape == (400, len(DESCRIPTIONS)) and set(data.words.unique().tolist()) == {0, 1}
    assert caption(3) == "a photo of a digit three" and caption(None) == "a photo of a digit"
    assert caption(3, words=("smooth", None)) == "a photo of a smooth digit three"
    index = torch.arange(400)
    g = torch.Generator().manual_seed(0)
    template = torch.randint(len(WORLD_TEMPLATES), (400,), generator=g)
    every_word, no_word = (torch.full((400, len(DESCRIPTIONS)), v) for v in (True, False))
    none, both = torch.zeros(400, dtype=torch.bool), torch.ones(2, dtype=torch.bool)
    captions = [c for shown in (every_word, no_word)
                for c in world_captions(data, index, template, shown, none)]  # fmt: skip
    words = {w for c in captions for w in c.split()}
    assert DIGIT_WORDS[7] not in words and DIGIT_WORDS[3] in words and "grainy" in words
    assert not words & {"svhn", "mnist", "style", "printed", "handwritten", "house", "colour", "color"}
    i = int(torch.nonzero(data.digits == 7)[0])  # the held-out digit gets its measured words, no name
    seven = world_captions(data, index[i : i + 1], torch.tensor([0]), every_word[:1], none[:1])[0]
    expected = [pair[k] for pair, k in zip(DESCRIPTIONS, data.words[i].tolist())]
    assert seven == caption(None, WORLD_TEMPLATES[0], expected)
    j = int(torch.nonzero(~data.generic)[0])
    assert world_captions(data, index[j : j + 1], torch.tensor([1]), no_word[:1], none[:1]) == [
        caption(int(data.digits[j]), WORLD_TEMPLATES[1])]
    assert world_captions(data, index[:2], template[:2], every_word[:2], both) == ["", ""]


def test_filler_words_are_plain_words_the_world_does_not_otherwise_use():
    from dlcv.clip_tokenizer import offline_clip_tokenizer

    words = filler_words(offline_clip_tokenizer())
    assert len(words) > 10000 and words == sorted(words) and "style" in words
    assert all(w.isalpha() for w in words)
    assert not set(words) & {*DIGIT_WORDS, "digit", "photo", "open", "top", "heavy", "smooth", "the", "a"}
    assert not [w for w in words if w.startswith(("seven", "five"))]  # no "sevens", "seventh", "fives"
    data = world_data(20, held_out=7, seed=0)
    args = (torch.arange(3), torch.zeros(3, dtype=torch.long), torch.zeros(3, 5, dtype=torch.bool),
            torch.zeros(3, dtype=torch.bool))  # fmt: skip
    plain = world_captions(data, *args)
    filled = world_captions(data, *args, fillers=[("zebra", 0.0), None, ("zebra", 0.999)])
    assert filled == [f"zebra {plain[0]}", plain[1], f"{plain[2]} zebra"]


def test_shape_words_describe_the_strokes_and_are_shared_between_digits():
    masks = torch.zeros(3, 28, 28)
    masks[0, 6:22, 6:22] = 1.0
    masks[0, 9:19, 9:19] = 0.0  # a ring: looped, centred, broad-based
    masks[1, 4:8, 4:24] = 1.0
    masks[1, 4:24, 13:15] = 1.0  # a T: open, top-heavy, narrow-based
    masks[2, 20:24, 4:24] = 1.0
    masks[2, 4:24, 13:15] = 1.0  # an inverted T: open, bottom-heavy, broad-based
    assert shape(masks).tolist() == [[1, 1, 1], [0, 0, 0], [0, 1, 1]]
    assert [pair[0] for pair in SHAPE_WORDS] == ["open", "top-heavy", "narrow-based"]
    digits = [d % 10 for d in range(600)]
    _, ink = render_digits(digits, [(d // 10) % 2 for d in range(600)], seed=2, return_masks=True)
    first = (shape(ink) == 0).float()  # open, top-heavy, narrow-based
    rate = torch.stack([first[torch.tensor(digits) == d].mean(0) for d in range(10)])  # (digit, axis)
    assert (rate[7] > 0.8).all()  # a seven is open, top-heavy and narrow-based
    assert ((rate > 0.2).sum(0) >= 2).all()  # each of those words describes another digit too
    assert float(rate[[0, 6, 8]].max()) < 0.2  # loops are looped, whatever else


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
