"""dlcv.stable_diffusion.textual_inversion / ti_data: only the placeholder rows learn, the file reloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dlcv.cli import UserError
from dlcv.io.checkpoint import load_checkpoint
from dlcv.io.images import save_png
from dlcv.stable_diffusion.course_input import read_input_json
from dlcv.stable_diffusion.embeddings import LEARNED_EMBEDS, add_embeddings, load_embedding
from dlcv.stable_diffusion.generation import encode_text
from dlcv.stable_diffusion.loading import load_stable_diffusion
from dlcv.stable_diffusion.textual_inversion import TIConfig, init_vectors, train_textual_inversion
from dlcv.stable_diffusion.ti_data import Augmentation, augmented_views, concept_images, guess_kind
from dlcv.stable_diffusion.tiny import build_tiny_sd
from dlcv.training import TrainConfig
from dlcv_bench.sd_reference import diffusers_pipeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOKEN = "<ti-test>"
VOCAB = 49408


def _images(folder: Path, n: int = 4) -> Path:
    g = torch.Generator().manual_seed(1)
    for i in range(n):
        save_png(torch.randint(0, 256, (3, 40, 48), generator=g, dtype=torch.uint8), folder / f"{i}.png")
    return folder


def _train_cfg(out: Path, steps: int = 3, **kw) -> TrainConfig:
    return TrainConfig(
        out_dir=out,
        steps=steps,
        batch_size=2,
        lr=5e-2,
        grad_clip=None,
        ema_decay=None,
        log_every=1,
        ckpt_every=0,
        device="cpu",
        **kw,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_sd_ckpt, tiny_sd_config):
    """Three TI steps of a 2-vector token on the tiny model loaded from its .ckpt, with snapshots."""
    root = tmp_path_factory.mktemp("ti")
    sd = load_stable_diffusion(tiny_sd_ckpt, config=tiny_sd_config)
    before = {
        name: {k: v.clone() for k, v in net.state_dict().items()}
        for name, net in (("unet", sd.unet), ("vae", sd.vae), ("text", sd.text_encoder))
    }
    init = init_vectors(sd, "dog", 2)
    ti = TIConfig(
        token=TOKEN,
        init_word="dog",
        vectors=2,
        augmentation=Augmentation(32, 2),
        validate_images=1,
        validate_steps=1,
    )
    images = concept_images(_images(root / "images"))
    learned = train_textual_inversion(sd, images, ti, _train_cfg(root / "out"), base_model="tiny")
    return sd, before, init, learned, root / "out"


def test_only_the_placeholder_rows_change(trained):
    sd, before, init, learned, _ = trained
    table = sd.text_encoder.get_input_embeddings().weight
    ids = sd.tokenizer.convert_tokens_to_ids([TOKEN, f"{TOKEN}_1"])
    assert ids == [VOCAB, VOCAB + 1] and table.shape[0] == VOCAB + 2
    old = next(v for k, v in before["text"].items() if k.endswith("token_embedding.weight"))
    assert torch.equal(table[:VOCAB], old)  # bitwise
    assert learned.shape == (2, 32) and learned.dtype == torch.float32
    assert torch.equal(table[ids], learned)  # merged into the table
    for row in range(2):  # each vector received gradient and moved away from "dog"
        assert not torch.allclose(learned[row], init[row])
    assert not sd.text_encoder.get_input_embeddings()._forward_hooks  # the training hook is gone


def test_frozen_networks_are_bitwise_unchanged(trained):
    sd, before, *_ = trained
    for name, net in (("unet", sd.unet), ("vae", sd.vae), ("text", sd.text_encoder)):
        for key, value in net.state_dict().items():
            if key.endswith("token_embedding.weight"):
                continue
            assert torch.equal(value, before[name][key]), (name, key)
        assert not any(p.requires_grad for p in net.parameters())


def test_saved_embedding_reloads_everywhere(trained):
    sd, _, _, learned, out = trained
    path = out / LEARNED_EMBEDS
    raw = load_file(str(path))
    assert list(raw) == [TOKEN] and raw[TOKEN].shape == (2, 32)  # diffusers' {token: (n, D)}
    token, value = load_embedding(path)
    assert token == TOKEN and torch.equal(value, learned)
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 3
    assert (out / "samples" / "step_0000003.png").is_file()

    prompt = f"a photo of a {TOKEN} {TOKEN}_1"
    expected = encode_text(sd, [prompt])
    fresh = build_tiny_sd(0)
    add_embeddings(fresh.tokenizer, fresh.text_encoder, {token: value})
    torch.testing.assert_close(encode_text(fresh, [prompt]), expected, rtol=0, atol=0)

    other = build_tiny_sd(0)
    pipe = diffusers_pipeline(other)
    pipe.load_textual_inversion(str(path))  # diffusers expands the token as we do
    torch.testing.assert_close(encode_text(other, [prompt]), expected, rtol=0, atol=0)


def test_init_vectors():
    sd = build_tiny_sd(0)
    table = sd.text_encoder.get_input_embeddings().weight
    dog = sd.tokenizer("dog", add_special_tokens=False).input_ids
    assert torch.equal(init_vectors(sd, "dog", 3), table[dog].expand(3, -1))
    revoy = sd.tokenizer("David Revoy", add_special_tokens=False).input_ids
    assert len(revoy) > 1
    rows = table[revoy]
    one = init_vectors(sd, "David Revoy", 1)
    torch.testing.assert_close(one.norm(), rows.norm(dim=1).mean())
    assert torch.nn.functional.cosine_similarity(one[0], rows.mean(0), dim=0) > 0.999
    assert torch.equal(init_vectors(sd, "David Revoy", len(revoy)), rows)
    with pytest.raises(UserError, match="`init_word`"):
        init_vectors(sd, "  ", 1)


def test_augmented_views_are_seeded_crops_and_flips():
    g = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 30, 50), generator=g, dtype=torch.uint8) for _ in range(2)]
    aug = Augmentation(resolution=16, views=5, crop_min=0.5)
    views = augmented_views(images, aug, seed=3)
    assert views.shape == (10, 3, 16, 16) and views.min() >= -1 and views.max() <= 1
    assert torch.equal(views, augmented_views(images, aug, seed=3))
    assert not torch.equal(views, augmented_views(images, aug, seed=4))
    assert torch.equal(views[1], views[0].flip(-1))  # view 1 mirrors the whole image
    plain = augmented_views(images, Augmentation(16, views=8, crop_min=1.0, flip=False))
    assert plain.shape == (2, 3, 16, 16)  # nothing random left: one view per image


def test_kind_from_the_course_prompts():
    concepts = read_input_json(FIXTURES / "textual_inversion_input.json")
    assert [guess_kind(c.prompts, c.token) for c in concepts] == ["object", "style"]
    assert guess_kind(["Manhattan in the Style of a <x>"], "<x>") == "style"
    assert guess_kind(["a <x> with style"], "<x>") == "object"


def test_bad_inputs(tmp_path):
    sd = build_tiny_sd(0)
    images = concept_images(_images(tmp_path / "images", 1))
    cases = [
        (TIConfig(token="dog", init_word="dog"), "already in the tokenizer"),
        (TIConfig(token=TOKEN, init_word="dog", vectors=0), "`vectors`"),
        (TIConfig(token=TOKEN, init_word="dog", augmentation=Augmentation(33)), "multiple of 2"),
        (TIConfig(token=TOKEN, init_word="dog", kind="texture"), "object' or 'style"),
    ]
    for ti, needle in cases:
        with pytest.raises(UserError, match=needle):
            train_textual_inversion(sd, images, ti, _train_cfg(tmp_path / "o"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        concept_images(tmp_path / "empty")
    with pytest.raises(UserError, match="not found"):
        concept_images(tmp_path / "nowhere")
