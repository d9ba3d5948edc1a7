"""dlcv.clip_eval.loading / convert: offline loading of Hugging Face folders and OpenAI files."""

from __future__ import annotations

import pickle
import socket
import warnings

import pytest
import torch
import torch.nn.functional as F

from dlcv.cli import UserError
from dlcv.clip_eval.convert import is_torchscript_archive, read_openai_state_dict
from dlcv.clip_eval.loading import clip_dtype, load_clip, resolve_clip_source
from dlcv.clip_eval.tiny import random_clip, save_hf_folder

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the clip package imports the deprecated pkg_resources
    import clip
    from clip.model import CLIP

PROMPTS = ["a photo of <new1>.", "A dog perched on a park bench.", "palm_tree"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def openai_model():
    """A tiny OpenAI CLIP with every weight drawn at a scale where mistakes show."""
    torch.manual_seed(0)
    model = CLIP(
        embed_dim=24,
        image_resolution=32,
        vision_layers=2,
        vision_width=128,
        vision_patch_size=8,
        context_length=77,
        vocab_size=49408,
        transformer_width=64,
        transformer_heads=1,
        transformer_layers=2,
    ).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "logit_scale":
                p.normal_(0, 0.3 if p.ndim > 1 else 0.5)
    return model


def _reference_features(model, pixels, prompts):
    with torch.no_grad():
        image = F.normalize(model.encode_image(pixels), dim=-1)
        text = F.normalize(model.encode_text(clip.tokenize(prompts, truncate=True)), dim=-1)
    return image, text


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("fmt", ["state_dict", "fp16_state_dict", "torchscript"])
def test_openai_file_gives_the_clip_packages_features(openai_model, tmp_path, fmt):
    pixels = torch.randn(3, 3, 32, 32)
    path = tmp_path / "ViT-tiny.pt"
    if fmt == "torchscript":
        tokens = clip.tokenize(PROMPTS)
        traced = torch.jit.trace_module(openai_model, {"encode_image": (pixels,), "encode_text": (tokens,)})
        traced.save(str(path))
        assert is_torchscript_archive(path)
    else:
        state = openai_model.state_dict()
        if fmt == "fp16_state_dict":  # OpenAI's weights are stored in half precision
            state = {k: v.half() for k, v in state.items()}
        torch.save(state, path)
        assert not is_torchscript_archive(path)
    reference = openai_model if fmt != "fp16_state_dict" else _rounded(openai_model)
    image_ref, text_ref = _reference_features(reference, pixels, PROMPTS)

    loaded = load_clip(path)
    assert loaded.image_size == 32
    assert loaded.logit_scale == pytest.approx(float(openai_model.logit_scale.detach().exp()), rel=1e-3)
    torch.testing.assert_close(loaded.encode_images(pixels), image_ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(loaded.encode_texts(PROMPTS), text_ref, atol=1e-4, rtol=0)


def _rounded(model):
    """The same model with its weights rounded through fp16, computed in fp32."""
    copy = CLIP(
        embed_dim=24,
        image_resolution=32,
        vision_layers=2,
        vision_width=128,
        vision_patch_size=8,
        context_length=77,
        vocab_size=49408,
        transformer_width=64,
        transformer_heads=1,
        transformer_layers=2,
    ).eval()
    copy.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    return copy


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_plain_state_dict_is_read_with_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("unpickled arbitrary code",))

    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(UserError, match="cannot read CLIP checkpoint .*evil.pt"):
        read_openai_state_dict(path)


def test_resnet_checkpoint_is_refused(tmp_path):
    path = tmp_path / "RN50.pt"
    torch.save({"visual.layer1.0.conv1.weight": torch.zeros(1), "logit_scale": torch.zeros(())}, path)
    with pytest.raises(UserError, match="only the ViT variants"):
        load_clip(path)


def test_hf_folder_loads_offline_and_matches_transformers(tmp_path):
    model = random_clip()
    folder = save_hf_folder(model, tmp_path / "clip-tiny")
    loaded = load_clip(folder)
    assert loaded.source == str(folder)
    assert loaded.model.config._attn_implementation == "sdpa"
    pixels = torch.randn(2, 3, 32, 32)
    tokens = loaded.tokenizer(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(pixel_values=pixels, **tokens)
    torch.testing.assert_close(loaded.encode_images(pixels), out.image_embeds)
    torch.testing.assert_close(loaded.encode_texts(PROMPTS), out.text_embeds)
    assert loaded.logit_scale == pytest.approx(float(model.logit_scale.detach().exp()))


def test_hf_folder_without_tokenizer_files_uses_offline_tokenizer(tmp_path):
    folder = save_hf_folder(random_clip(), tmp_path / "clip-notok", tokenizer_files=False)
    loaded = load_clip(folder)
    assert len(loaded.tokenizer) == 49408
    assert loaded.encode_texts(["a photo of a cat."]).shape == (1, 16)


def test_folder_holding_an_openai_file_and_model_names(openai_model, tmp_path, monkeypatch):
    cache = tmp_path / "home" / ".cache" / "clip"
    cache.mkdir(parents=True)
    torch.save(openai_model.state_dict(), cache / "ViT-B-32.pt")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_clip_source(cache) == cache / "ViT-B-32.pt"
    assert resolve_clip_source("ViT-B/32") == cache / "ViT-B-32.pt"
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here: the default lookup finds the cache
    assert resolve_clip_source(None) == cache / "ViT-B-32.pt"


def test_default_lookup_prefers_checkpoints_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = save_hf_folder(random_clip(), tmp_path / "checkpoints" / "clip-vit-base-patch32")
    assert resolve_clip_source(None).resolve() == folder.resolve()


def test_missing_weights_say_what_to_put_where(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        UserError,
        match=r"no CLIP weights found .*checkpoints/clip-vit-base-patch32"
        r".*~/\.cache/clip/ViT-B-32\.pt",
    ):
        resolve_clip_source(None)
    with pytest.raises(
        UserError, match="openai/clip-vit-base-patch32: no such file, folder or locally cached model"
    ):
        resolve_clip_source("openai/clip-vit-base-patch32")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither config.json"):
        resolve_clip_source(tmp_path / "empty")


def test_hub_id_in_local_cache_is_found(tmp_path, monkeypatch):
    hub = tmp_path / "hf" / "hub" / "models--someone--tiny-clip"
    snapshot = hub / "snapshots" / ("a" * 40)
    save_hf_folder(random_clip(), snapshot)
    (hub / "refs").mkdir(parents=True)
    (hub / "refs" / "main").write_text("a" * 40)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.chdir(tmp_path)
    assert resolve_clip_source("someone/tiny-clip") == snapshot


def test_unreadable_and_malformed_files(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read CLIP checkpoint .*broken.pt"):
        load_clip(bad)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(UserError, match="expected a CLIP state dict"):
        load_clip(tmp_path / "list.pt")
    folder = tmp_path / "bad-hf"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(UserError, match="cannot load a CLIP model from .*bad-hf"):
        load_clip(folder)


@pytest.mark.parametrize("capability", [(7, 5), (8, 0), (9, 0)])
def test_precision_choice(monkeypatch, capability):
    """CLIP's documented exception to the precision rule: fp16 (its release format) on every card."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert clip_dtype("auto", torch.device("cpu")) == torch.float32
    assert clip_dtype("auto", torch.device("cuda")) == torch.float16
    assert clip_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(UserError, match="`precision`"):
        clip_dtype("fp8", torch.device("cpu"))
