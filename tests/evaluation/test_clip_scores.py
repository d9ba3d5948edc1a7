"""evaluation/clip_scores.py: the course's CLIP scores as a library and a one-folder command.

Hand-chosen embeddings (a stand-in for CLIP's encoders) make every score a known
number: an image (a, b, c) scores 100 a against the reference e0 and 100 b against
the text e1.
"""

from __future__ import annotations

import importlib
import math
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import UserError

from ..conftest import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "evaluation" / "clip_scores.py"
# index: (a, b); rank score 100 a + 250 b
SCORES = {
    0: (0.3, 0.1),
    1: (0.9, 0.05),
    2: (0.5, 0.3),
    3: (0.1, 0.45),
    4: (0.6, 0.2),
    5: (0.2, 0.1),
    6: (0.8, 0.11),
    7: (0.4, 0.24),
}
# rank scores: 55, 102.5, 125, 122.5, 110, 45, 107.5, 100
TOP5 = [2, 3, 4, 6, 1]  # image 58 on average, text 22.2


def _load_module():
    return load_script("evaluation/clip_scores.py", "clip_scores_cli")


class StandInClip:
    source = "stand-in CLIP"
    logit_scale = 100.0

    def encode_texts(self, texts):
        return torch.tensor([[0.0, 1.0, 0.0]]).repeat(len(texts), 1)


def _vector(path: Path) -> torch.Tensor:
    if path.parent.name == "refs":
        return torch.tensor([1.0, 0.0, 0.0])
    a, b = SCORES[int(path.stem)]
    return torch.tensor([a, b, math.sqrt(1 - a * a - b * b)])


@pytest.fixture
def module(monkeypatch):
    """The script as a module, its image encoder and loader replaced by the stand-in."""
    mod = _load_module()
    calls = []

    def encode(clip, paths, *args, **kwargs):
        calls.append([Path(p).parent.name for p in paths])
        return torch.stack([_vector(Path(p)) for p in paths])

    monkeypatch.setattr(mod, "encode_image_files", encode)
    monkeypatch.setattr(mod, "load_clip", lambda spec, device, precision: StandInClip())
    mod.encode_calls = calls
    return mod


def _png(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("scores")
    for i in SCORES:
        _png(root / "images" / f"{i}.png", i)
    _png(root / "refs" / "r0.png", 10)
    _png(root / "refs" / "r1.png", 11)
    return root / "images", root / "refs"


def test_score_folder_ranks_keeps_top5_and_averages(module, folders):
    images, refs = folders
    scores = module.score_folder(StandInClip(), images, refs, "a dog", batch_size=3)
    assert [f.name for f in scores.files] == [f"{i}.png" for i in range(8)]
    assert scores.image == pytest.approx([100 * SCORES[i][0] for i in range(8)], abs=1e-4)
    assert scores.text == pytest.approx([100 * SCORES[i][1] for i in range(8)], abs=1e-4)
    assert scores.selection.indices == TOP5
    assert scores.selection.image_score == pytest.approx(sum(100 * SCORES[i][0] for i in TOP5) / 5, abs=1e-4)
    assert scores.selection.text_score == pytest.approx(sum(100 * SCORES[i][1] for i in TOP5) / 5, abs=1e-4)
    assert module.encode_calls == [["refs", "refs"], ["images"] * 8]  # references once
    assert module.score_folder(StandInClip(), images, refs, "a dog", k=2).selection.indices == [2, 3]


def test_library_checks_folders_before_encoding(module, folders, tmp_path):
    images, refs = folders
    with pytest.raises(UserError, match="need at least 9"):
        module.score_folder(StandInClip(), images, refs, "a dog", k=9)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: no reference images"):
        module.score_folder(StandInClip(), images, tmp_path / "empty", "a dog")
    assert module.encode_calls == []


def test_pass_rule_and_constants(module):
    assert (module.TOP_K, module.TEXT_WEIGHT, module.IMAGES_PER_PROMPT) == (5, 2.5, 25)
    assert module.passes(58.0, 22.8, [58, 22.8]) and not module.passes(57.99, 30, [58, 22.8])
    assert module.select_top_k([1.0, 3.0, 2.0], [0.0, 0.0, 0.0], k=2).indices == [1, 2]


def test_command_prints_ranks_averages_margins_and_verdict(module, folders, capsys):
    images, refs = folders
    module.main(
        [
            "--images",
            str(images),
            "--references",
            str(refs),
            "--text",
            "a dog",
            "--baseline",
            "56.5",
            "20",
            "--device",
            "cpu",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "CLIP: stand-in CLIP"
    marks = {line[3:].split()[0]: line[:2].strip() for line in lines[1:9]}
    assert marks == {f"{i}.png": (f"#{TOP5.index(i) + 1}" if i in TOP5 else "") for i in range(8)}
    assert lines[3].startswith("#1 2.png  image  50.00  text  30.00  rank score  125.00")
    assert lines[-1] == ("top 5: image 58.00 (baseline 56.5, +1.50)  text 22.20 (baseline 20, +2.20)  PASS")
    module.main(
        [
            "--images",
            str(images),
            "--references",
            str(refs),
            "--text",
            "a dog",
            "--top_k",
            "3",
            "--baseline",
            "41",
            "0",
            "--device",
            "cpu",
        ]
    )
    assert capsys.readouterr().out.splitlines()[-1] == (
        "top 3: image 40.00 (baseline 41, -1.00)  text 31.67 (baseline 0, +31.67)  FAIL"
    )
    module.main(["--images", str(images), "--references", str(refs), "--text", "a dog"])
    assert capsys.readouterr().out.splitlines()[-1] == "top 5: image 58.00  text 22.20"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--images", "{images}", "--references", "{root}/none"], "reference folder not found"),
        (["--images", "{root}/none", "--references", "{refs}"], "image folder not found"),
        (
            ["--images", "{images}", "--references", "{images}", "--top_k", "9"],
            r"images: 8 images, need at least 9 \(the number kept\)",
        ),
        (["--images", "{images}", "--references", "{root}"], "no reference images"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(folders, monkeypatch, capsys, args, message):
    images, refs = folders
    argv = [a.format(images=images, refs=refs, root=images.parent) for a in args]
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *argv, "--text", "a dog", "--clip", "nowhere"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")  # as `python evaluation/clip_scores.py`
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert re.search(message, err)


def test_runs_with_a_tiny_random_clip(folders, tmp_path, capsys):
    from dlcv.clip_eval.tiny import random_clip, save_hf_folder

    images, refs = folders
    weights = save_hf_folder(random_clip(), tmp_path / "clip-tiny")
    scores = _load_module().main(
        [
            "--images",
            str(images),
            "--references",
            str(refs),
            "--text",
            "a dog",
            "--clip",
            str(weights),
            "--device",
            "cpu",
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"CLIP: {weights}" and len(out) == 1 + 8 + 1
    expected = sorted(range(8), key=lambda i: -(scores.image[i] + 2.5 * scores.text[i]))[:5]
    assert scores.selection.indices == expected


def test_importable_as_a_library_from_the_repo_root(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.delitem(sys.modules, "evaluation.clip_scores", raising=False)
    lib = importlib.import_module("evaluation.clip_scores")
    for name in lib.__all__:
        assert hasattr(lib, name), name
