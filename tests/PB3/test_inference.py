"""PB3/inference.py and hw2_3.sh on a tiny random Stable Diffusion, offline."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from dlcv.cli import UserError

from ..conftest import FIXTURES, load_script, run_script

INPUT_JSON = FIXTURES / "textual_inversion_input.json"
TINY = ["--resolution", "16", "--steps", "2", "--device", "cpu", "--quiet"]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


SCRIPT = load_script("PB3/inference.py", "pb3_inference")
main = SCRIPT.main  # raises the library's errors: arguments in backticks (run() shows flags)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny SD checkpoint, its --model-config JSON and learned embeddings in two lookup layouts."""
    from dlcv.stable_diffusion.tiny import build_tiny_sd, save_tiny_checkpoint

    root = tmp_path_factory.mktemp("pb3")
    sd = build_tiny_sd(seed=0)
    width = sd.text_encoder.config.hidden_size
    emb = root / "embeddings"
    (emb / "new1").mkdir(parents=True)  # one training run per token, 2 vectors
    save_file({"<new1>": torch.randn(2, width)}, emb / "new1" / "learned_embeds.safetensors")
    (emb / "1").mkdir()  # PB3/train.py --json layout: one folder per concept key
    save_file({"<new2>": torch.randn(width)}, emb / "1" / "learned_embeds.safetensors")
    torch.save(torch.randn(1, width), root / "cat.pt")  # a bare tensor
    return {
        "ckpt": save_tiny_checkpoint(sd, root / "tiny.ckpt"),
        "config": sd.config.save(root / "tiny_config.json"),
        "embeddings": emb,
        "cat": root / "cat.pt",
    }


def test_hw2_3_writes_25_images_per_prompt(tmp_path, tiny):
    out = tmp_path / "out"
    result = run_script(
        "hw2_3.sh",
        str(INPUT_JSON),
        str(out),
        str(tiny["ckpt"]),
        "--model-config",
        str(tiny["config"]),
        "--batch-size",
        "25",
        *TINY,
        env={**OFFLINE, "PB3_EMBEDDINGS": str(tiny["embeddings"])},
    )
    assert result.returncode == 0, result.stderr
    assert "<new1>: 2 vector(s)" in result.stdout and "wrote 100 images" in result.stdout
    spec = json.loads(INPUT_JSON.read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(spec)
    for key, concept in spec.items():
        indices = [str(i) for i in range(len(concept["prompt"]))]
        assert sorted(p.name for p in (out / key).iterdir()) == indices
        for index in range(len(concept["prompt"])):
            files = sorted((out / key / str(index)).iterdir())
            assert [p.name for p in files] == [f"{i:02d}.png" for i in range(25)]
            with Image.open(files[-1]) as image:
                assert image.size == (16, 16) and image.mode == "RGB"


def test_prompt_mode_with_several_placeholders(tmp_path, tiny, monkeypatch):
    """--prompt with three placeholders from three --embeddings entries (2 vectors, a bare tensor, a
    --json layout folder): each one's learned vectors are what the text encoder looks up for it;
    a placeholder without an embedding is one error naming the command that trains it."""
    from dlcv.stable_diffusion import generation

    monkeypatch.setenv("PB3_EMBEDDINGS", "")
    prompt_embeddings = []  # the token embeddings of each encoded prompt, as the encoder saw them
    encode_text = generation.encode_text

    def recording_encode_text(sd, prompts):
        hook = sd.text_encoder.get_input_embeddings().register_forward_hook(
            lambda _module, _args, out: prompt_embeddings.extend(out.detach().clone())
        )
        try:
            return encode_text(sd, prompts)
        finally:
            hook.remove()

    monkeypatch.setattr(generation, "encode_text", recording_encode_text)
    out = tmp_path / "free"
    main(
        [
            "--prompt",
            "a <new1> next to a <cat> in the style of <new2>",
            "--out-dir",
            str(out),
            "--ckpt",
            str(tiny["ckpt"]),
            "--model-config",
            str(tiny["config"]),
            "--n-images",
            "3",
            "--embeddings",
            f"<cat>={tiny['cat']}",
            "--embeddings",
            str(tiny["embeddings"]),
            "--embeddings",
            str(tiny["embeddings"] / "1"),
            "--guidance",
            "3",
            *TINY,
        ]
    )
    assert sorted(p.name for p in out.iterdir()) == ["00.png", "01.png", "02.png"]
    # the text encoder looked up each placeholder's learned vectors, in the prompt's order, once each
    rows = prompt_embeddings[0]
    new1 = load_file(tiny["embeddings"] / "new1" / "learned_embeds.safetensors")["<new1>"]
    new2 = load_file(tiny["embeddings"] / "1" / "learned_embeds.safetensors")["<new2>"]
    learned = [new1[0], new1[1], torch.load(tiny["cat"])[0], new2]
    where = [[i for i, row in enumerate(rows) if torch.equal(row, vector)] for vector in learned]
    assert [len(found) for found in where] == [1, 1, 1, 1] and where == sorted(where), where
    assert where[1][0] == where[0][0] + 1  # <new1>'s two vectors side by side
    with pytest.raises(UserError, match=r'no learned embedding for <zz-none>.*--token "<zz-none>"'):
        main(["--prompt", "a <new1> beside a <zz-none>", *_args(tiny, tmp_path / "none")])
    assert not (tmp_path / "none").exists()


def _args(tiny, out, *extra):
    return [
        "--out-dir",
        str(out),
        "--ckpt",
        str(tiny["ckpt"]),
        "--model-config",
        str(tiny["config"]),
        "--embeddings",
        str(tiny["embeddings"]),
        *TINY,
        *extra,
    ]


def test_bad_inputs(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("PB3_EMBEDDINGS", "")
    out = tmp_path / "out"
    with pytest.raises(UserError, match="input json not found: .*nope.json"):
        main(["--json", str(tmp_path / "nope.json"), *_args(tiny, out)])
    missing = tmp_path / "input.json"
    missing.write_text(json.dumps({"7": {"token_name": "<zz-untrained>", "prompt": ["a <zz-untrained>"]}}))
    hint = r"no learned embedding for <zz-untrained> \(concept '7'\).*PB3/train.py --sd-ckpt .*tiny.ckpt"
    with pytest.raises(UserError, match=hint + " --json .*input.json"):
        main(["--json", str(missing), *_args(tiny, out)])
    with pytest.raises(UserError, match="checkpoint not found: .*sd-v1-4.ckpt"):
        main(["--json", str(INPUT_JSON), *_args(tiny, out), "--ckpt", str(tmp_path / "sd-v1-4.ckpt")])
    with pytest.raises(UserError, match="absent does not exist"):
        main(["--json", str(INPUT_JSON), *_args(tiny, out), "--embeddings", str(tmp_path / "absent")])
    with pytest.raises(UserError, match="`n_images` must be positive"):
        main(["--json", str(INPUT_JSON), *_args(tiny, out), "--n-images", "0"])
    wide = tmp_path / "wide.safetensors"
    save_file({"<new1>": torch.zeros(768), "<new2>": torch.zeros(768)}, wide)
    with pytest.raises(UserError, match="has width 768, but the text encoder expects 32"):
        main(["--json", str(INPUT_JSON), "--embeddings", str(wide), *_args(tiny, out)])
    assert not out.exists()  # nothing was written before the inputs were checked


def test_errors_are_one_line_with_exit_code_2(tmp_path, tiny):
    untrained = tmp_path / "input.json"
    untrained.write_text(json.dumps({"0": {"token_name": "<zz-untrained>", "prompt": ["a <zz-untrained>"]}}))
    result = run_script(
        "PB3/inference.py",
        "--json",
        str(untrained),
        "--out-dir",
        str(tmp_path / "o"),
        "--ckpt",
        str(tiny["ckpt"]),
        "--embeddings",
        str(tmp_path),
        env={"PB3_EMBEDDINGS": ""},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: no learned embedding for <zz-untrained>")
    usage = run_script("hw2_3.sh", str(INPUT_JSON), str(tmp_path / "o"))
    assert usage.returncode == 2 and "usage: bash hw2_3.sh INPUT_JSON OUT_DIR SD_CKPT" in usage.stderr


def test_hw2_3_defaults_evaluate_the_unet_as_often_as_the_time_estimate_counts(tmp_path, tiny, monkeypatch):
    """hw2_3.sh's sampling at its defaults (DPM-Solver++ 20 steps, guidance 7.5, batch 5) on the tiny
    model, the public input.json's 4 prompts at 2 images each: the latents that go through the UNet
    are exactly unet_evaluations() of those settings, the count that the README's hw2_3 time
    (docs/results/sd_unet_flops.json, 100 images at the same defaults) divides by the 2080 Ti's speed."""
    from diffusers import UNet2DConditionModel

    from dlcv.stable_diffusion.generation import unet_evaluations
    from dlcv_bench.render import load

    rows: list[int] = []
    forward = UNet2DConditionModel.forward

    def counting(self, sample, *args, **kwargs):
        rows.append(len(sample))
        return forward(self, sample, *args, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "forward", counting)
    monkeypatch.setenv("PB3_EMBEDDINGS", str(tiny["embeddings"]))
    argv = ["--json", str(INPUT_JSON), "--out-dir", str(tmp_path / "out"), "--ckpt", str(tiny["ckpt"])]
    argv += ["--model-config", str(tiny["config"]), "--n-images", "2", "--resolution", "16"]
    argv += ["--device", "cpu"]
    defaults = SCRIPT.build_parser().parse_args(argv)
    main([*argv, "--quiet"])
    prompts = sum(len(concept["prompt"]) for concept in json.loads(INPUT_JSON.read_text()).values())
    assert sum(rows) == unet_evaluations(prompts * 2, defaults.steps, defaults.guidance) == 4 * 2 * 20 * 2
    hw2_3 = next(row for row in load("sd_unet_flops.json")["hw2_3"]["rows"] if row["default"])
    assert (hw2_3["solver"], hw2_3["steps"], hw2_3["guidance"]) == (defaults.solver, defaults.steps, 7.5)
    per_prompt = SCRIPT.build_parser().get_default("n_images")
    assert hw2_3["evaluations"] == unet_evaluations(prompts * per_prompt, defaults.steps, 7.5)
