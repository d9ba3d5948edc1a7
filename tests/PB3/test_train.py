"""PB3/train.py: Textual Inversion from the command line (one concept, --json, --resume, bad input).

``main`` raises the library's errors, which name the job's arguments in backticks (``dlcv.cli.run``
shows them as flags: the ``run_script`` cases and tests/test_bad_inputs.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dlcv.cli import UserError
from dlcv.io.checkpoint import load_checkpoint
from dlcv.io.images import save_png
from dlcv.stable_diffusion.embeddings import load_embedding

from ..conftest import FIXTURES, load_script, run_script

FAST = [
    "--resolution",
    "32",
    "--views",
    "2",
    "--batch-size",
    "2",
    "--validate-images",
    "1",
    "--validate-steps",
    "1",
    "--device",
    "cpu",
    "--log-every",
    "1",
]


SCRIPT = load_script("PB3/train.py", "pb3_train")
main = SCRIPT.main


def _images(folder: Path, seed: int) -> Path:
    g = torch.Generator().manual_seed(seed)
    for i in range(4):
        save_png(torch.randint(0, 256, (3, 36, 40), generator=g, dtype=torch.uint8), folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """The tiny SD written as a CompVis .ckpt, a diffusers folder and its config JSON."""
    from dlcv.stable_diffusion.tiny import write_tiny_sd

    return write_tiny_sd(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A course-shaped textual_inversion/ folder: input.json, 0/ and 1/ with four tiny images each."""
    root = tmp_path_factory.mktemp("textual_inversion")
    shutil.copy(FIXTURES / "textual_inversion_input.json", root / "input.json")
    _images(root / "0", 0)
    _images(root / "1", 1)
    return root


def test_one_concept_trains_and_resumes(tmp_path, tiny, data):
    out = tmp_path / "new9"
    args = [
        "--sd-ckpt",
        str(tiny["ckpt"]),
        "--model-config",
        str(tiny["config"]),
        "--images",
        str(data / "0"),
        "--token",
        "<new9>",
        "--init-word",
        "dog",
        "--out",
        str(out),
        *FAST,
    ]
    main([*args, "--steps", "2"])
    token, first = load_embedding(out / "learned_embeds.safetensors")
    assert token == "<new9>" and first.shape == (1, 32)
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["step"] == 2 and set(state["model"]) == {"vectors"}  # a small checkpoint
    assert state["config"]["textual_inversion"]["kind"] == "object"
    assert (out / "samples" / "step_0000002.png").is_file()

    with pytest.raises(UserError, match="pass `resume` to continue it"):
        main([*args, "--steps", "4"])
    main([*args, "--steps", "4", "--resume"])
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 4
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    _, second = load_embedding(out / "learned_embeds.safetensors")
    assert not torch.equal(first, second)

    with pytest.raises(UserError, match="vectors"):  # a checkpoint of another shape is refused clearly
        main([*args, "--steps", "6", "--resume", "--vectors", "2"])


def test_json_mode_trains_every_concept_into_its_folder(tmp_path, tiny, data, capsys):
    out = tmp_path / "pb3"
    args = [
        "--sd-ckpt",
        str(tiny["diffusers"]),
        "--json",
        str(data / "input.json"),
        "--out",
        str(out),
        "--steps",
        "1",
        *FAST,
    ]
    main(args)
    expected = {"0": ("<new1>", "object", "dog"), "1": ("<new2>", "style", "David Revoy")}
    for key, (token, kind, init) in expected.items():
        assert load_embedding(out / key / "learned_embeds.safetensors")[0] == token
        ti = load_checkpoint(out / key / "checkpoint.pt")["config"]["textual_inversion"]
        assert (ti["token"], ti["kind"], ti["init_word"]) == (token, kind, init)

    capsys.readouterr()
    main([*args, "--resume"])  # both finished: nothing to do, the model is not even loaded
    said = capsys.readouterr().out
    assert said.count("already trained") == 2


def test_bad_inputs_give_one_line(tmp_path, tiny, data):
    result = run_script(
        "PB3/train.py",
        "--sd-ckpt",
        str(tmp_path / "missing.ckpt"),
        "--images",
        str(data / "0"),
        "--token",
        "<x>",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 2 and "missing.ckpt" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1

    (tmp_path / "empty").mkdir()
    ckpt = [
        "--sd-ckpt",
        str(tiny["ckpt"]),
        "--model-config",
        str(tiny["config"]),
        "--out",
        str(tmp_path / "o"),
    ]
    cases = [
        (["--images", str(tmp_path / "nowhere"), "--token", "<x>"], "nowhere"),
        (["--images", str(tmp_path / "empty"), "--token", "<x>"], "no images"),
        (["--images", str(data / "0")], "`token` is required"),
        (["--images", str(data / "0"), "--token", "<x>", "--steps", "0"], "`steps` must be >= 1"),
        (["--images", str(data / "0"), "--token", "dog", *FAST], "already in the tokenizer"),
        (["--json", str(tmp_path / "input.json")], "input.json"),
        (["--json", str(data / "input.json"), "--data", str(tmp_path / "empty")], "concept '0'"),
        (["--json", str(data / "input.json"), "--keys", "7"], "no concept '7'"),
        (["--json", str(data / "input.json"), "--kind", "0=texture"], "`kind` '0=texture'"),
    ]
    for extra, needle in cases:
        with pytest.raises(UserError, match=needle):
            main([*ckpt, *extra])
    flags = run_script("PB3/train.py", *ckpt, "--images", str(data / "0"), "--token", "<x>", "--warmup", "-1")
    assert flags.returncode == 2 and flags.stderr.strip() == "error: --warmup must be >= 0, got -1"
    with pytest.raises(UserError, match="--model-config"):
        main(
            [
                "--sd-ckpt",
                str(tiny["ckpt"]),
                "--model-config",
                str(tmp_path / "no.json"),
                "--images",
                str(data / "0"),
                "--token",
                "<x>",
                "--out",
                str(tmp_path / "o2"),
            ]
        )


def test_a_link_where_the_default_folder_of_a_token_goes_is_refused(tmp_path, monkeypatch):
    """Without --out, a token's folder is DEFAULT/NAME (tests/stable_diffusion/test_course.py); a link
    planted there is refused, nothing written through it."""
    default = tmp_path / "checkpoints" / "pb3"
    monkeypatch.setattr(SCRIPT, "DEFAULT_EMBEDDINGS_DIR", default)
    images = _images(tmp_path / "images", 0)
    (tmp_path / "elsewhere").mkdir()
    default.mkdir(parents=True)
    (default / "new1").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(UserError, match=r"output folder .*pb3/new1 is a symbolic link"):
        main(["--sd-ckpt", str(images / "0.png"), "--images", str(images), "--token", "<new1>", *FAST])
    assert list((tmp_path / "elsewhere").iterdir()) == []
