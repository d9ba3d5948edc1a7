"""The grader's library: reading generated digits like the course does, predicting, reporting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from dlcv.cli import ArgumentError, UserError
from dlcv.digits.classifiers import LeNet
from dlcv.digits.grading import (
    accuracy_stats,
    check_output_folder,
    find_svhn_checkpoint,
    format_details,
    format_report,
    grade_digit_folder,
    label_from_name,
    normalize,
    predict,
    read_digit_folder,
)

COURSE_TRANSFORM = transforms.Compose(
    [transforms.Resize((28, 28)), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
)


def write_folder(folder, n_per_digit=2, size=28, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for d in range(10):
        for i in range(1, n_per_digit + 1):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{d}_{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def out_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("out")
    write_folder(root / "mnistm", seed=1)
    write_folder(root / "svhn", size=32, seed=2)  # another size: resized like the course's Resize
    return root


def course_inputs(folder):
    """The course grader's tensors and labels, computed with torchvision and PIL directly."""
    files = sorted(folder.iterdir())
    x = torch.stack([COURSE_TRANSFORM(Image.open(p).convert("RGB")) for p in files])
    return x, torch.tensor([int(p.name[0]) for p in files])


def test_label_from_name():
    assert label_from_name("3_012.png") == 3 and label_from_name("/a/b/0_001.png") == 0
    for bad in ("x_001.png", "_1.png", "٣_001.png"):
        with pytest.raises(UserError, match="must start with the digit"):
            label_from_name(bad)


@pytest.mark.parametrize("dataset", ["mnistm", "svhn"])
def test_read_matches_the_course_preprocessing(out_folder, dataset):
    images, labels, names = read_digit_folder(out_folder / dataset)
    x, y = course_inputs(out_folder / dataset)
    assert images.dtype == torch.uint8 and images.shape == (20, 3, 28, 28)
    assert names[0] == "0_001.png" and torch.equal(labels, y)
    assert torch.equal(normalize(images), x)  # bit-exact, resize included


def test_hidden_files_skipped_bad_files_refused(tmp_path):
    folder = write_folder(tmp_path / "mnistm", n_per_digit=1)
    (folder / ".DS_Store").write_bytes(b"\x00")
    (folder / "sub").mkdir()
    assert len(read_digit_folder(folder)[0]) == 10
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="notes.txt"):
        read_digit_folder(folder)
    (folder / "notes.txt").unlink()
    (folder / "7_bad.png").write_text("not a png")
    with pytest.raises(UserError, match="cannot read image .*7_bad.png"):
        read_digit_folder(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no images in"):
        read_digit_folder(empty)


def test_output_folder_checks(tmp_path):
    with pytest.raises(UserError, match="`folder` not found"):
        check_output_folder(tmp_path / "nothing")
    with pytest.raises(ArgumentError) as info:  # the command line names the flag
        check_output_folder(tmp_path / "nothing")
    assert info.value.command_line().startswith("--folder not found")
    (tmp_path / "mnistm").mkdir()
    with pytest.raises(UserError, match="has no svhn/ sub-folder"):
        check_output_folder(tmp_path)


def test_predict_and_grade_equal_an_independent_argmax(out_folder):
    torch.manual_seed(0)
    models = {"mnistm": LeNet().eval(), "svhn": LeNet().eval()}
    result = grade_digit_folder(out_folder, models["mnistm"], models["svhn"], batch_size=7)
    for name, model in models.items():
        x, y = course_inputs(out_folder / name)
        with torch.no_grad():
            expected = model(x).argmax(1)
        images, _, _ = read_digit_folder(out_folder / name)
        assert torch.equal(predict(model, images, batch_size=3), expected)
        correct = int((expected == y).sum())
        assert (result[name]["correct"], result[name]["total"]) == (correct, 20)
        assert result[name]["acc"] == correct / 20
    assert result["acc"] == (result["mnistm"]["acc"] + result["svhn"]["acc"]) / 2


def test_report_lines_are_the_course_lines():
    result = {
        "mnistm": accuracy_stats(torch.tensor([1, 2, 3, 0]), torch.tensor([1, 2, 3, 4])),
        "svhn": accuracy_stats(torch.tensor([1, 1, 1]), torch.tensor([1, 1, 2])),
    }
    result["acc"] = (0.75 + 2 / 3) / 2
    assert format_report(result) == [
        "MNIST-M acc = 0.7500 (correct/total = 3/4)",
        "SVHN acc = 0.6667 (correct/total = 2/3)",
        "acc = 0.7083",
    ]
    assert result["mnistm"]["per_digit"] == {1: [1, 1], 2: [1, 1], 3: [1, 1], 4: [0, 1]}
    details = format_details(result)
    assert details[0].startswith("MNIST-M per digit 1:1/1") and "simple 0.90 FAILED" in details[0]


def test_find_svhn_checkpoint(tmp_path):
    ckpt = tmp_path / "Classifier.pth"
    with pytest.raises(UserError, match="`svhn_checkpoint`"):
        find_svhn_checkpoint(ckpt)
    (tmp_path / "resnet34_svhn.pth").write_bytes(b"")
    assert find_svhn_checkpoint(ckpt).name == "resnet34_svhn.pth"
    (tmp_path / "svhn_classifier.safetensors").write_bytes(b"")
    assert find_svhn_checkpoint(ckpt).name == "svhn_classifier.safetensors"


def test_wilson_interval_matches_published_values():
    from dlcv.digits.grading import wilson_interval

    low, high = wilson_interval(95, 100)  # Newcombe (1998), Table I style check values
    assert abs(low - 0.8882) < 5e-4 and abs(high - 0.9785) < 5e-4
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and abs(high - 0.2775) < 5e-4
    low, high = wilson_interval(500, 500)
    assert high == 1.0 and 0.99 < low < 0.995
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_the_grades_record_reads_back_what_the_grader_wrote(tmp_path):
    import json

    from dlcv.digits.grading import GradesRecord, grades_record

    stats = {
        name: {"acc": 0.5, "correct": 2, "total": 4, "per_digit": {0: [1, 2], 3: [1, 2]}}
        for name in ("mnistm", "svhn")
    }
    record = grades_record({**stats, "acc": 0.5}, tmp_path, tmp_path / "a.pth", tmp_path / "b.pth")
    assert list(record) == [
        "folder",
        "mnistm_checkpoint",
        "svhn_checkpoint",
        "baselines",
        "mnistm",
        "svhn",
        "acc",
    ]
    path = tmp_path / "grades.json"
    path.write_text(json.dumps(record))
    back = GradesRecord.load(path)
    assert back.grades["svhn"].per_digit == {0: (1, 2), 3: (1, 2)} and back.acc == 0.5
    assert back.svhn_checkpoint == str((tmp_path / "b.pth").resolve()) and back.baselines["strong"] == 0.95
    assert json.loads(json.dumps(back.to_json())) == json.loads(path.read_text())
    for broken in ({"mnistm": stats["mnistm"]}, {**record, "svhn": {**stats["svhn"], "correct": 9}}, []):
        with pytest.raises(UserError, match="is not what `evaluation/digit_classifier.py --json` writes"):
            GradesRecord.from_json(broken, path)
