"""evaluation/grade_hw2_3.py: the course's Problem 3 grading from the command line.

Most tests give the grader embeddings chosen by hand (a stand-in CLIP whose image and
text scores are known numbers), so ranking, top 5, averaging over references and the
pass rule are checked against values worked out here by plain arithmetic.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import UserError
from dlcv.clip_eval import grading, loading

from ..conftest import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "evaluation" / "grade_hw2_3.py"

# Embeddings live in 3-d: references along e0 (and e2 for concept 1), the text along e1.
# An image (a, b, sqrt(1 - a^2 - b^2)) has cosine a with e0 and b with the text.
DEFAULT_AB = (0.3, 0.1)  # rank score 30 + 2.5 * 10 = 55
DESIGN = {  # index: (a, b) -> rank score 100a + 250b
    3: (0.9, 0.1),  # 115
    7: (0.5, 0.3),  # 125
    11: (0.2, 0.4),  # 120
    13: (0.7, 0.19),  # 117.5
    20: (0.6, 0.15),  # 97.5
    21: (0.95, 0.0),  # 95: the best image score, yet sixth
}
TOP5 = [7, 11, 13, 3, 20]
TOP5_IMAGE = (50 + 20 + 70 + 90 + 60) / 5  # 58
TOP5_TEXT = (30 + 40 + 19 + 10 + 15) / 5  # 22.8
EQUAL_AB = (0.4, 0.3)  # concept 1: all 25 images alike -> ties keep file order
EQUAL_IMAGE = 100 * (0.4 + math.sqrt(1 - 0.4**2 - 0.3**2)) / 2  # mean over references e0, e2
INPUT = {
    "0": {
        "token_name": "<new1>",
        "prompt": ["A <new1> on a hill.", "A <new1> in snow.", "A <new1> at the beach."],
        "prompt_4_clip_eval": ["A dog on a hill.", "A dog in snow.", "A dog at the beach."],
        "baseline": [[57.9, 22.7], [58.1, 0], [0, 22.9]],  # pass, image short, text short
    },
    "1": {
        "token_name": "<new2>",
        "prompt": ["A city in the style of <new2>."],
        "prompt_4_clip_eval": ["A city in the style of David Revoy."],
        "baseline": [[EQUAL_IMAGE - 0.1, 29.9]],  # pass
    },
}


def _unit(a: float, b: float) -> torch.Tensor:
    return torch.tensor([a, b, math.sqrt(1 - a * a - b * b)])


def vector_of(path: Path) -> torch.Tensor:
    """The hand-chosen embedding of a test file, read from where it lies."""
    if path.parent.parent.name == "refs":
        return torch.tensor([1.0, 0.0, 0.0]) if path.stem == "a" else torch.tensor([0.0, 0.0, 1.0])
    key, index = path.parent.parent.name, int(path.stem)
    return _unit(*(EQUAL_AB if key == "1" else DESIGN.get(index, DEFAULT_AB)))


class StandInClip:
    """What the grader needs of a loaded CLIP: text encoder, logit scale, source."""

    source = "stand-in CLIP"
    logit_scale = 100.0

    def encode_texts(self, texts):
        return torch.tensor([[0.0, 1.0, 0.0]]).repeat(len(texts), 1)


@pytest.fixture
def stand_in(monkeypatch):
    """Replace image encoding and loading by the hand-chosen embeddings; record the calls."""
    calls = {"encoded": [], "clip": []}

    def encode(clip, paths, *args, **kwargs):
        calls["encoded"].append([Path(p) for p in paths])
        return torch.stack([vector_of(Path(p)) for p in paths])

    def load(spec, device, precision):
        calls["clip"].append(spec)
        return StandInClip()

    monkeypatch.setattr(grading, "encode_image_files", encode)
    monkeypatch.setattr(loading, "load_clip", load)
    return calls


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """input.json, references refs/{key}/ and 25 outputs per prompt in out/{key}/{p}/."""
    root = tmp_path_factory.mktemp("grade")
    (root / "input.json").write_text(json.dumps(INPUT))
    _png(root / "refs" / "0" / "a.png", 0)  # concept 0: one reference, e0
    _png(root / "refs" / "1" / "a.png", 2)  # concept 1: two references, e0 and e2
    _png(root / "refs" / "1" / "b.png", 3)
    for key, entry in INPUT.items():
        for p in range(len(entry["prompt_4_clip_eval"])):
            for i in range(25):
                _png(root / "out" / key / str(p) / f"{i:02d}.png", i)
    return root


def _args(tree: Path, *extra: str, out: Path | None = None) -> list[str]:
    return [
        "--json_path",
        str(tree / "input.json"),
        "--input_dir",
        str(tree / "refs"),
        "--output_dir",
        str(out or tree / "out"),
        "--device",
        "cpu",
        "--workers",
        "0",
        *extra,
    ]


def _load_main():
    return load_script("evaluation/grade_hw2_3.py").main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_ranking_top5_and_pass_rule_on_known_scores(tree, stand_in, tmp_path, capsys):
    saved = tmp_path / "scores" / "grade.json"
    summary = _load_main()(_args(tree, "--clip", "my-clip", "--save_json", str(saved)))
    assert stand_in["clip"] == ["my-clip"]
    assert json.loads(saved.read_text()) == summary
    assert [(s["key"], s["index"]) for s in summary] == [("0", 0), ("0", 1), ("0", 2), ("1", 0)]

    for s in summary[:3]:  # concept 0: image score 100 a, text score 100 b
        assert s["top_files"] == [f"{i:02d}.png" for i in TOP5]
        assert s["image_score"] == pytest.approx(TOP5_IMAGE, abs=1e-4)
        assert s["text_score"] == pytest.approx(TOP5_TEXT, abs=1e-4)
    # concept 1: 25 equal images -> the first five files, scores averaged over e0 and e2
    assert summary[3]["top_files"] == [f"{i:02d}.png" for i in range(5)]
    assert summary[3]["image_score"] == pytest.approx(EQUAL_IMAGE, abs=1e-4)
    assert summary[3]["text_score"] == pytest.approx(30.0, abs=1e-4)
    assert [s["passed"] for s in summary] == [True, False, False, True]
    assert summary[0]["image_margin"] == pytest.approx(TOP5_IMAGE - 57.9, abs=1e-4)
    assert summary[1]["image_margin"] == pytest.approx(-0.1, abs=1e-4)
    assert summary[2]["text_margin"] == pytest.approx(-0.1, abs=1e-4)

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "CLIP: stand-in CLIP"
    report = [line for line in lines if line.startswith("concept ")]
    assert len(report) == 4
    assert report[0].startswith(
        "concept 0 prompt 0: image  58.00 (baseline 57.9, +0.10)  "
        "text  22.80 (baseline 22.7, +0.10)  PASS  | A dog on a hill."
    )
    assert "image  58.00 (baseline 58.1, -0.10)" in report[1] and "FAIL" in report[1]
    assert "text  22.80 (baseline 22.9, -0.10)  FAIL" in report[2]
    assert report[3].startswith("concept 1 prompt 0:") and "PASS" in report[3]
    assert "passed 2/4 prompts" in lines
    assert lines[-1] == f"wrote {saved}"


def test_references_encoded_once_per_concept(tree, stand_in):
    _load_main()(_args(tree, "--batch_size", "4"))
    refs = [c for c in stand_in["encoded"] if c[0].parent.parent.name == "refs"]
    assert sorted(c[0].parent.name for c in refs) == ["0", "1"]
    generated = [c for c in stand_in["encoded"] if c[0].parents[2].name == "out"]
    assert len(generated) == 4 and all(len(c) == 25 for c in generated)


def test_refuses_a_folder_without_25_images_naming_folder_and_count(tree, tmp_path):
    out = tmp_path / "out"
    for key, entry in INPUT.items():
        for p in range(len(entry["prompt_4_clip_eval"])):
            folder = out / key / str(p)
            folder.mkdir(parents=True)
            for i in range(25):
                (folder / f"{i:02d}.png").symlink_to(tree / "out" / key / str(p) / f"{i:02d}.png")
    (out / "0" / "2" / "24.png").unlink()
    # no CLIP weights are needed: every folder is checked before loading
    proc = _run(*_args(tree, "--clip", str(tmp_path / "no-weights"), out=out))
    assert proc.returncode == 2
    assert proc.stderr == f"error: {out / '0' / '2'}: expected exactly 25 images, found 24\n"
    assert proc.stdout == ""
    _png(out / "0" / "2" / "24.png", 0)
    _png(out / "0" / "2" / "25.png", 0)
    with pytest.raises(UserError, match=r"out/0/2: expected exactly 25 images, found 26"):
        _load_main()(_args(tree, out=out))


def _broken_json(tmp_path: Path) -> Path:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    return path


def _no_baseline(tmp_path: Path) -> Path:
    path = tmp_path / "input.json"
    path.write_text(json.dumps({"0": {"prompt_4_clip_eval": ["a", "b"], "baseline": [[1, 2]]}}))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t, tmp: {"--json_path": str(tmp / "none.json")}, "input.json not found: .*none.json"),
        (lambda t, tmp: {"--json_path": str(_broken_json(tmp))}, "broken.json is not valid JSON"),
        (
            lambda t, tmp: {"--json_path": str(_no_baseline(tmp))},
            r"concept '0': 'baseline' must hold one \[image, text\] pair per evaluation prompt \(2\)",
        ),
        (lambda t, tmp: {"--input_dir": str(tmp)}, "reference folder of concept '0' not found"),
        (lambda t, tmp: {"--input_dir": str(tmp / "x")}, "input folder not found: .*x"),
        (lambda t, tmp: {"--output_dir": str(tmp / "y")}, "output folder not found: .*y"),
        (lambda t, tmp: {"--output_dir": str(tmp)}, r"0/0: expected exactly 25 images, found 0"),
    ],
)
def test_bad_inputs_name_the_file_or_folder(tree, tmp_path, stand_in, change, message):
    argv = _args(tree)
    for flag, value in change(tree, tmp_path).items():
        argv[argv.index(flag) + 1] = value
    with pytest.raises(UserError, match=message):
        _load_main()(argv)
    assert stand_in["clip"] == []  # refused before any weights were loaded


def test_missing_weights_say_where_to_put_them(tree, tmp_path):
    with pytest.raises(UserError, match=r"`clip` .*nowhere: no such file.*checkpoints/clip-vit"):
        _load_main()(_args(tree, "--clip", str(tmp_path / "nowhere")))


def test_runs_end_to_end_with_a_tiny_random_clip(tree, tmp_path, capsys):
    from dlcv.clip_eval.tiny import random_clip, save_hf_folder

    weights = save_hf_folder(random_clip(), tmp_path / "clip-tiny")
    summary = _load_main()(_args(tree, "--clip", str(weights)))
    assert len(summary) == 4
    for s in summary:
        assert s["passed"] == (s["image_score"] >= s["baseline"][0] and s["text_score"] >= s["baseline"][1])
        assert len(s["top_files"]) == 5 and len(set(s["top_files"])) == 5
    out = capsys.readouterr().out
    assert f"CLIP: {weights}" in out
    assert f"passed {sum(s['passed'] for s in summary)}/4 prompts" in out


def test_help_names_the_course_flags():
    proc = _run("--help")
    assert proc.returncode == 0
    for flag in ("--json_path", "--input_dir", "--output_dir", "--clip", "--save_json"):
        assert flag in proc.stdout
    assert _run("--json_path", "x").returncode == 2  # argparse: the other two are required
