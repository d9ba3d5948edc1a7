"""dlcv.stable_diffusion.loading: CompVis .ckpt / .safetensors and diffusers folders load offline."""

from __future__ import annotations

import logging
import warnings

import pytest
import torch

from dlcv.cli import UserError
from dlcv.stable_diffusion.config import load_config, sd_v1_config, tiny_config
from dlcv.stable_diffusion.embeddings import add_embeddings
from dlcv.stable_diffusion.loading import load_stable_diffusion
from dlcv.stable_diffusion.safe_load import safe_torch_load
from dlcv.stable_diffusion.tiny import build_tiny_sd, save_tiny_checkpoint


def _outputs(sd) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """UNet, VAE decoder and text encoder outputs on fixed inputs."""
    g = torch.Generator().manual_seed(0)
    size = sd.config.resolution // sd.config.vae_scale
    x = torch.randn(2, 4, size, size, generator=g)
    c = torch.randn(2, 77, sd.config.text_encoder["hidden_size"], generator=g)
    ids = sd.tokenizer(
        ["a photo of a dog", ""], padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        eps = sd.unet(x, torch.tensor([1, 981]), encoder_hidden_states=c).sample
        image = sd.vae.decode(x).sample
        text = sd.text_encoder(ids).last_hidden_state
    return eps, image, text


@pytest.fixture(scope="module")
def reference(tiny_sd_model):
    return _outputs(tiny_sd_model)


@pytest.mark.parametrize("kind", ["ckpt", "safetensors", "folder"])
def test_every_format_gives_the_same_networks(kind, request, reference, tiny_sd_config):
    path = request.getfixturevalue(
        {"ckpt": "tiny_sd_ckpt", "safetensors": "tiny_sd_safetensors", "folder": "tiny_sd_folder"}[kind]
    )
    sd = load_stable_diffusion(path, config=tiny_sd_config)
    assert not sd.unet.training and not any(p.requires_grad for p in sd.text_encoder.parameters())
    assert sd.config.resolution == 32 and sd.config.scaling_factor == pytest.approx(0.18215)
    for ours, ref in zip(_outputs(sd), reference, strict=True):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


def test_lightning_extras_are_read_without_running_code(tiny_sd_ckpt, tiny_sd_trap_marker, tiny_sd_config):
    with pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
        torch.load(tiny_sd_ckpt, weights_only=True)  # the file really holds foreign objects
    data = safe_torch_load(tiny_sd_ckpt)
    assert "state_dict" in data and data["global_step"] == 470000
    load_stable_diffusion(tiny_sd_ckpt, config=tiny_sd_config)
    assert not tiny_sd_trap_marker.exists(), "unpickling ran code from the checkpoint"


def test_model_config_json_round_trip(tiny_sd_config_json, tiny_sd_ckpt, reference):
    config = load_config(tiny_sd_config_json)
    assert config == tiny_config()
    sd = load_stable_diffusion(tiny_sd_ckpt, config=config)
    torch.testing.assert_close(_outputs(sd)[0], reference[0], rtol=0, atol=1e-5)


def test_sd_v1_block_layout_round_trips(tmp_path):
    """Four levels and two layers per block: SD v1's exact layout, through CompVis names and back."""
    config = tiny_config(channels=(32, 32, 64, 64), layers_per_block=2, resolution=64)
    sd = build_tiny_sd(seed=1, config=config)
    loaded = load_stable_diffusion(save_tiny_checkpoint(sd, tmp_path / "v1.ckpt"), config=config)
    for ours, ref in zip(_outputs(loaded), _outputs(sd), strict=True):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    state = safe_torch_load(tmp_path / "v1.ckpt")["state_dict"]
    for key in (
        "model.diffusion_model.input_blocks.3.0.op.weight",  # downsampler of level 0
        "model.diffusion_model.output_blocks.2.1.conv.weight",  # upsampler, no attention
        "model.diffusion_model.output_blocks.5.2.conv.weight",  # upsampler after attention
        "model.diffusion_model.output_blocks.8.2.conv.weight",
        "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight",
        "first_stage_model.decoder.mid.attn_1.q.weight",
        "cond_stage_model.transformer.text_model.final_layer_norm.weight",
    ):
        assert key in state, key


def test_diffusers_folder_loads_offline_with_its_own_tokenizer(tiny_sd_folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sd = load_stable_diffusion(tiny_sd_folder)
    assert sd.tokenizer("a <x> dog").input_ids == build_tiny_sd().tokenizer("a <x> dog").input_ids
    assert sd.schedule.alpha_bar.shape == (1000,)


def test_a_diffusers_folder_loads_without_the_accelerate_warning(tiny_sd_folder, caplog):
    with caplog.at_level(logging.WARNING):
        load_stable_diffusion(tiny_sd_folder)
    assert not [r for r in caplog.records if "accelerate" in r.getMessage()]


def test_missing_file_is_named():
    with pytest.raises(UserError, match="not found: /nowhere/sd-v1-4.ckpt"):
        load_stable_diffusion("/nowhere/sd-v1-4.ckpt")


@pytest.mark.parametrize(
    "content, message",
    [
        (
            {"state_dict": {"model.diffusion_model.time_embed.0.weight": torch.zeros(2, 2)}},
            "not a Stable Diffusion v1 checkpoint",
        ),
        ({"state_dict": {"cond_stage_model.model.token_embedding.weight": torch.zeros(2, 2)}}, "2.x"),
        ({"state_dict": {"conditioner.embedders.0.x": torch.zeros(2)}}, "SDXL"),
        (torch.zeros(3), "holds no state dict"),
        (b"this is not a checkpoint", "not a PyTorch checkpoint"),
    ],
)
def test_not_sd_v1_files_are_refused(tmp_path, content, message):
    path = tmp_path / "model.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(UserError, match=message) as info:
        load_stable_diffusion(path)
    assert str(path) in str(info.value)


def test_wrong_architecture_names_the_model_config_flag(tiny_sd_ckpt):
    with pytest.raises(UserError, match="`model_config`") as info:
        load_stable_diffusion(tiny_sd_ckpt, config=sd_v1_config())
    assert "--model-config" in info.value.command_line()


def test_not_a_diffusers_folder(tmp_path):
    with pytest.raises(UserError, match="unet/config.json is missing"):
        load_stable_diffusion(tmp_path)


def test_bad_model_config_json(tmp_path):
    bad = tmp_path / "config.json"
    deep = "[" * 5000 + "]" * 5000
    for content, message in (
        ('{"unet": {}, "colour": "red"}', "colour"),
        ('{"unet": 3}', "'unet' must be"),
        ("[1, 2", "is not valid JSON"),
        (deep, "nested 5000 levels deep"),
    ):
        bad.write_text(content)
        with pytest.raises(UserError, match=message) as info:
            load_config(bad)
        assert str(bad) in str(info.value)


def test_tokenizer_with_placeholders_matches_clip_tokenize():
    """After adding placeholders, other text tokenizes exactly as OpenAI's ``clip.tokenize``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clip imports the deprecated pkg_resources
        import clip

    sd = build_tiny_sd()
    width = sd.text_encoder.config.hidden_size
    ids = add_embeddings(
        sd.tokenizer, sd.text_encoder, {"<new1>": torch.ones(1, width), "<new3>": torch.ones(2, width)}
    )
    new1, (new3, new3_1) = ids["<new1>"][0], ids["<new3>"]
    assert (new1, new3, new3_1) == (49408, 49409, 49410)

    def clip_ids(text: str) -> list[int]:
        row = clip.tokenize([text])[0].tolist()
        return row[1 : row.index(49407)]

    cases = {  # the prompt as pieces: text (tokenized by clip) and placeholder ids
        "A <new1> shepherd posing proudly on a hill.": ["A", new1, "shepherd posing proudly on a hill."],
        "The streets of Paris in the style of <new1>.": ["The streets of Paris in the style of", new1, "."],
        "a <new1> next to a <new3> <new3>_1": ["a", new1, "next to a", new3, new3_1],
        "<new1>, oil painting (2024)!": [new1, ", oil painting (2024)!"],
        "A photo of a dog.": ["A photo of a dog."],
    }
    for prompt, pieces in cases.items():
        expected = [i for p in pieces for i in ([p] if isinstance(p, int) else clip_ids(p))]
        got = sd.tokenizer(prompt, padding="max_length", max_length=77).input_ids
        assert got[: len(expected) + 2] == [49406, *expected, 49407], prompt
        assert set(got[len(expected) + 2 :]) <= {49407}
