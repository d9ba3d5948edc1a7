"""dlcv.clip_eval.zeroshot: data checks, prompts, ensembling, and predictions = argmax."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dlcv.cli import UserError
from dlcv.clip_eval.loading import wrap_clip_model
from dlcv.clip_eval.prompts import CIFAR_TEMPLATES, label_text
from dlcv.clip_eval.tiny import clip_config, random_clip
from dlcv.clip_eval.zeroshot import (
    ZeroShotJob,
    ZeroShotSummary,
    pick_cases,
    read_id2label,
    read_zeroshot_folder,
    run_zeroshot,
    text_classifier,
    write_predictions_csv,
    zeroshot_job,
)
from dlcv.clip_tokenizer import offline_clip_tokenizer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import clip
    from clip.clip import _transform as openai_transform

LABELS = {"0": "apple", "3": "palm_tree", "7": "sweet_pepper", "12": "cloud"}


def make_data(root: Path, per_class: int = 3, labels: dict | None = None) -> Path:
    labels = LABELS if labels is None else labels
    (root / "val").mkdir(parents=True)
    (root / "id2label.json").write_text(json.dumps(labels))
    rng = np.random.default_rng(0)
    for class_id in labels:
        for j in range(per_class):
            array = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(array).save(root / "val" / f"{class_id}_{j:03d}.png")
    return root


@pytest.fixture(scope="module")
def tiny():
    """A tiny random CLIP with weights large enough that images get different predictions."""
    model = random_clip(clip_config(patch_size=16), seed=1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "logit_scale":
                p.normal_(0, 1.0)
    return wrap_clip_model(model, offline_clip_tokenizer())


def test_reads_files_and_labels(tmp_path):
    data = read_zeroshot_folder(make_data(tmp_path))
    assert len(data.files) == 12
    assert data.id2label == {0: "apple", 3: "palm_tree", 7: "sweet_pepper", 12: "cloud"}
    assert data.targets[:3] == [0, 0, 0] and sorted(set(data.targets)) == [0, 3, 7, 12]


def test_id2label_key_forms(tmp_path):
    path = tmp_path / "id2label.json"
    path.write_text('{"00": "apple", "1": "bee"}')
    assert read_id2label(path) == {0: "apple", 1: "bee"}
    path.write_text('["apple", "bee"]')
    assert read_id2label(path) == {0: "apple", 1: "bee"}
    path.write_text('{"x": "apple"}')
    with pytest.raises(UserError, match="class id 'x' is not an integer"):
        read_id2label(path)
    path.write_text('{"0": ""}')
    with pytest.raises(UserError, match="non-empty string"):
        read_id2label(path)


def test_bad_inputs_have_clear_messages(tmp_path):
    root = make_data(tmp_path / "a")
    Image.new("RGB", (8, 8)).save(root / "val" / "99_000.png")
    with pytest.raises(UserError, match=r"99_000.png: class id 99 is not in .*id2label.json"):
        read_zeroshot_folder(root)
    (root / "val" / "99_000.png").unlink()
    Image.new("RGB", (8, 8)).save(root / "val" / "cat.png")
    with pytest.raises(UserError, match=r"cat.png: file name is not \{class_id\}_\{image_id\}"):
        read_zeroshot_folder(root)
    empty = tmp_path / "b"
    (empty / "val").mkdir(parents=True)
    (empty / "id2label.json").write_text('{"0": "apple"}')
    with pytest.raises(UserError, match=r"val: no images"):
        read_zeroshot_folder(empty)
    (empty / "id2label.json").unlink()
    with pytest.raises(UserError, match="id2label.json not found"):
        read_zeroshot_folder(empty)
    with pytest.raises(UserError, match="zero-shot data folder not found"):
        read_zeroshot_folder(tmp_path / "nothing")


def test_ensemble_is_the_renormalised_mean(tiny):
    labels = ["palm_tree", "apple"]
    templates = CIFAR_TEMPLATES[:3]
    got = text_classifier(tiny, labels, templates, clean=True)
    with torch.no_grad():
        per_template = [
            F.normalize(
                tiny.model.get_text_features(
                    input_ids=clip.tokenize([t.format(label=lab.replace("_", " ")) for lab in labels])
                ).pooler_output,
                dim=-1,
            )
            for t in templates
        ]
    torch.testing.assert_close(got, F.normalize(torch.stack(per_template).mean(0), dim=-1))


@pytest.mark.parametrize("clean", [False, True])
def test_predictions_are_the_argmax_of_similarities(tmp_path, tiny, clean):
    data = read_zeroshot_folder(make_data(tmp_path, per_class=4))
    result = run_zeroshot(tiny, data, clean_labels=clean, batch_size=5)
    class_ids = sorted(int(k) for k in LABELS)
    prompts = [f"A photo of {label_text(LABELS[str(i)], clean)}." for i in class_ids]
    preprocess = openai_transform(32)
    with torch.no_grad():
        logits = tiny.model(
            input_ids=clip.tokenize(prompts),
            pixel_values=torch.stack([preprocess(Image.open(f)) for f in data.files]),
        ).logits_per_image
    expected = [class_ids[i] for i in logits.argmax(dim=1).tolist()]
    assert result.predicted == expected
    assert len(set(expected)) > 1  # the check is not trivial
    torch.testing.assert_close(
        torch.tensor(result.confidence), logits.softmax(dim=1).max(dim=1).values, atol=1e-5, rtol=0
    )
    assert result.accuracy == pytest.approx(
        np.mean([t == p for t, p in zip(data.targets, expected, strict=True)])
    )


def test_cases_and_csv(tmp_path):
    right, wrong = pick_cases([True, False] * 8, k=5, seed=0)
    assert len(right) == len(wrong) == 5
    assert all(i % 2 == 0 for i in right) and all(i % 2 == 1 for i in wrong)
    assert pick_cases([True, False] * 8, k=5, seed=0) == (right, wrong)
    assert pick_cases([True, True], k=5) == ([0, 1], [])

    from dlcv.clip_eval.zeroshot import ZeroShotResult

    result = ZeroShotResult([Path("0_1.png"), Path("3_2.png")], [0, 3], [0, 0], [0.9, 0.6])
    path = write_predictions_csv(result, {0: "apple", 3: "palm_tree"}, tmp_path / "p.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "file,class_id,label,pred_id,pred_label,correct,confidence"
    assert lines[2] == "3_2.png,3,palm_tree,0,apple,0,0.6000"
    mine = tmp_path / "mine.csv"  # a link planted at the CSV's name is replaced, not written through
    mine.write_text("mine")
    (tmp_path / "link.csv").symlink_to(mine)
    write_predictions_csv(result, {0: "apple", 3: "palm_tree"}, tmp_path / "link.csv")
    assert mine.read_text() == "mine" and not (tmp_path / "link.csv").is_symlink()
    assert (tmp_path / "link.csv").read_text() == path.read_text()


def test_the_job_refuses_bad_settings_before_reading_anything(tmp_path):
    with pytest.raises(UserError, match="`workers` must be 0 or more, got -1"):
        zeroshot_job(ZeroShotJob(tmp_path / "absent", tmp_path / "out", workers=-1))
    with pytest.raises(UserError, match="placeholder"):
        zeroshot_job(ZeroShotJob(tmp_path / "absent", tmp_path / "out", templates=["no label here"]))
    assert not (tmp_path / "out").exists()


def test_the_summary_reads_back_what_it_writes_and_refuses_anything_else(tmp_path):
    summary = ZeroShotSummary(0.5, 1, 2, 50, ["A photo of {}."], "as given", "clip", ["a.png"], ["b.png"])
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary.to_json()))
    assert ZeroShotSummary.load(path) == summary
    for bad, reason in [
        ([], "expected a JSON object"),
        ({**summary.to_json(), "templates": []}, "templates is empty"),
        ({**summary.to_json(), "correct": True}, "must be counts"),
        ({**summary.to_json(), "wrong_cases": [3]}, "lists of strings"),
        ({k: v for k, v in summary.to_json().items() if k != "clip"}, "no 'clip'"),
    ]:
        with pytest.raises(UserError, match=f"x.json is not what PB3/zeroshot.py writes: .*{reason}"):
            ZeroShotSummary.from_json(bad, "x.json")
