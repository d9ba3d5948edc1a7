"""dlcv.clip_eval.grading: input.json, the 25-image refusal, and scores as the course computes."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import UserError
from dlcv.clip_eval import grading
from dlcv.clip_eval.grading import (
    format_report,
    grade_textual_inversion,
    plan_grading,
    results_to_json,
)
from dlcv.clip_eval.loading import wrap_clip_model
from dlcv.clip_eval.tiny import random_clip
from dlcv.clip_tokenizer import offline_clip_tokenizer
from dlcv.stable_diffusion.course_input import read_input_json

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip
    from clip.clip import _transform as openai_transform

REPO = Path(__file__).resolve().parents[2]
INPUT_JSON = REPO / "tests" / "fixtures" / "textual_inversion_input.json"


def _save_random_pngs(folder: Path, n: int, seed: int, size: int = 32) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / f"{i:02d}.png")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """input_dir with reference images for concepts 0 and 1; output_dir with 25 per prompt."""
    root = tmp_path_factory.mktemp("ti")
    shutil.copy(INPUT_JSON, root / "input.json")
    _save_random_pngs(root / "data" / "0", 3, seed=100, size=40)
    _save_random_pngs(root / "data" / "1", 2, seed=200, size=48)
    for key in ("0", "1"):
        for p in (0, 1):
            _save_random_pngs(root / "out" / key / str(p), 25, seed=10 * int(key) + p)
    return root


@pytest.fixture(scope="module")
def tiny():
    return wrap_clip_model(random_clip(seed=3), offline_clip_tokenizer())


def test_reads_the_course_input_json():
    concepts = read_input_json(INPUT_JSON, for_grading=True)
    assert [c.key for c in concepts] == ["0", "1"]
    assert concepts[0].token == "<new1>"
    assert concepts[1].eval_prompts[1] == "Manhattan skyline in the style of David Revoy."
    assert concepts[0].baselines == [(79.0, 34.0), (74.0, 35.0)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected an object"),
        ('{"0": {"baseline": [[1, 2]]}}', "'prompt_4_clip_eval' must be a list"),
        (
            '{"0": {"prompt_4_clip_eval": ["a", "b"], "baseline": [[1, 2]]}}',
            r"one \[image, text\] pair per evaluation prompt \(2\)",
        ),
        ('{"0": {"prompt_4_clip_eval": ["a"], "baseline": [[1]]}}', "'baseline' must hold"),
    ],
)
def test_malformed_input_json(tmp_path, content, message):
    path = tmp_path / "input.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_input_json(path, for_grading=True)
    with pytest.raises(UserError, match="input.json not found"):
        read_input_json(tmp_path / "missing.json", for_grading=True)


def test_refuses_a_folder_without_exactly_25_images(tree, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(tree / "out", out)
    (out / "1" / "0" / "24.png").unlink()
    concepts = read_input_json(tree / "input.json", for_grading=True)
    with pytest.raises(UserError, match=r"out/1/0: expected exactly 25 images, found 24"):
        plan_grading(concepts, tree / "data", out)
    shutil.rmtree(out / "1" / "0")
    with pytest.raises(UserError, match=r"out/1/0: expected exactly 25 images, found 0"):
        plan_grading(concepts, tree / "data", out)
    _save_random_pngs(out / "1" / "0", 26, seed=0)
    with pytest.raises(UserError, match="found 26"):
        plan_grading(concepts, tree / "data", out)


def test_missing_reference_folder(tree, tmp_path):
    (tmp_path / "data" / "0").mkdir(parents=True)
    concepts = read_input_json(tree / "input.json", for_grading=True)
    with pytest.raises(UserError, match="no reference images"):
        plan_grading(concepts, tmp_path / "data", tree / "out")
    with pytest.raises(UserError, match="reference folder of concept '1' not found"):
        plan_grading(concepts[1:], tmp_path / "data", tree / "out")


def _course_scores(model, references, images, prompt):
    """The course's computation, written independently: clip's transform and tokenizer."""
    preprocess = openai_transform(32)
    with torch.no_grad():
        refs = model.get_image_features(
            pixel_values=torch.stack([preprocess(Image.open(p)) for p in references])
        ).pooler_output
        out = model(
            input_ids=clip.tokenize([prompt]),
            pixel_values=torch.stack([preprocess(Image.open(p)) for p in images]),
        )
    refs = refs / refs.norm(dim=-1, keepdim=True)
    image = torch.stack([100 * (out.image_embeds @ r) for r in refs], dim=1).mean(dim=1)
    text = out.logits_per_image[:, 0]
    top = sorted(range(len(images)), key=lambda i: -(image[i] + 2.5 * text[i]))[:5]
    return float(image[top].mean()), float(text[top].mean())


def test_grades_as_the_course_and_encodes_references_once(tree, tiny, monkeypatch):
    calls = []
    original = grading.encode_image_files

    def counting(clip_model, paths, *args, **kwargs):
        calls.append(
            [p.parent.name for p in paths][0] if paths[0].parent.parent.name == "data" else "generated"
        )
        return original(clip_model, paths, *args, **kwargs)

    monkeypatch.setattr(grading, "encode_image_files", counting)
    concepts = read_input_json(tree / "input.json", for_grading=True)
    results = grade_textual_inversion(tiny, plan_grading(concepts, tree / "data", tree / "out"), batch_size=8)
    assert calls.count("0") == 1 and calls.count("1") == 1  # references once per concept
    assert calls.count("generated") == 4
    assert [(r.key, r.index) for r in results] == [("0", 0), ("0", 1), ("1", 0), ("1", 1)]
    for r, concept in zip(results, [concepts[0]] * 2 + [concepts[1]] * 2, strict=True):
        refs = sorted((tree / "data" / r.key).glob("*.png"))
        images = sorted((tree / "out" / r.key / str(r.index)).glob("*.png"))
        expected = _course_scores(tiny.model, refs, images, concept.eval_prompts[r.index])
        assert (r.image_score, r.text_score) == pytest.approx(expected, abs=1e-3)
        assert len(r.top_files) == 5


def test_report_lists_margins_pass_fail_and_count(tree, tiny):
    concepts = read_input_json(tree / "input.json", for_grading=True)
    for c in concepts:  # a tiny random model scores near 0-100 at random: pick baselines
        c.baselines = [(-1000.0, -1000.0), (1000.0, -1000.0)]
    results = grade_textual_inversion(tiny, plan_grading(concepts, tree / "data", tree / "out"))
    report = format_report(results)
    lines = report.splitlines()
    assert lines[-1] == "passed 2/4 prompts"
    assert "PASS" in lines[0] and "FAIL" in lines[1]
    assert "baseline -1000, +" in lines[0] and "baseline 1000, -" in lines[1]
    summary = results_to_json(results)
    assert [s["passed"] for s in summary] == [True, False, True, False]
    assert json.loads(json.dumps(summary))[0]["image_margin"] == pytest.approx(results[0].image_score + 1000)


def test_scores_read_back_as_the_results_that_wrote_them(tmp_path):
    from dlcv.clip_eval.grading import PromptResult, load_results

    results = [
        PromptResult("0", 1, "a <new1> dog", 80.0, 30.0, (79.0, 31.0), ["03.png"]),
        PromptResult("1", 0, "a cat", 70.0, 35.0, (69.0, 34.0), []),
    ]
    path = tmp_path / "scores.json"
    path.write_text(json.dumps(results_to_json(results)))
    back = load_results(path)
    assert back == results and [r.passed for r in back] == [False, True]
    path.write_text(json.dumps([{"key": "0", "index": 1}]))
    with pytest.raises(UserError, match="is not what `grade_hw2_3.py --save_json` writes"):
        load_results(path)
