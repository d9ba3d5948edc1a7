"""Training the grader's classifiers: data split, sampler, augmentation, a short run, artefacts."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from dlcv.cli import UserError
from dlcv.digits.classifiers import LeNet, SmallCNN, load_digit_classifier
from dlcv.digits.grader_training import (
    augment,
    classification_loss,
    epoch_sampler,
    evaluate,
    load_train_and_heldout,
    train_digit_classifier,
    train_grader,
)


def test_heldout_is_the_test_split_when_there_is_one(digits_root):
    data = load_train_and_heldout(digits_root, "svhn", limit=30, progress=False)
    assert data.heldout_name == "test"
    assert data.train_images.shape == (30, 3, 28, 28) and len(data.heldout_images) == 20
    assert data.train_images.dtype == torch.uint8 and int(data.train_labels.max()) <= 9


def test_heldout_is_carved_from_train_otherwise(digits_root, tmp_path):
    root = tmp_path / "digits"
    shutil.copytree(digits_root / "mnistm", root / "mnistm")
    (root / "mnistm" / "test.csv").unlink()
    a = load_train_and_heldout(root, "mnistm", heldout_fraction=0.25, seed=1, progress=False)
    b = load_train_and_heldout(root, "mnistm", heldout_fraction=0.25, seed=1, progress=False)
    assert a.heldout_name == "train-holdout" and (len(a.train_images), len(a.heldout_images)) == (45, 15)
    assert torch.equal(a.heldout_images, b.heldout_images)  # seeded
    train_rows = {bytes(x.numpy()) for x in a.train_images}
    assert not any(bytes(x.numpy()) in train_rows for x in a.heldout_images)


def test_epoch_sampler_visits_every_image_once_per_epoch():
    images = torch.arange(10).view(10, 1, 1, 1).to(torch.uint8)
    labels = torch.arange(10)
    next_batch = epoch_sampler(images, labels, 5)
    g = torch.Generator().manual_seed(0)
    first = torch.cat([next_batch(g)[1] for _ in range(2)])
    second = torch.cat([next_batch(g)[1] for _ in range(2)])
    assert sorted(first.tolist()) == list(range(10)) == sorted(second.tolist())
    assert not torch.equal(first, second)
    x, y = next_batch(g)
    assert torch.equal(x.view(-1).long(), y)  # images and labels stay paired


def test_augment_is_seeded_bounded_and_mild():
    ramp = torch.arange(28.0) / 27
    x = (ramp[:, None] + ramp[None, :] - 1).expand(8, 3, 28, 28).contiguous()  # smooth, in [-1, 1]
    a = augment(x, torch.Generator().manual_seed(0))
    b = augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= -1 and a.max() <= 1
    assert 0 < (a - x).abs().mean() < 0.2


def test_loss_is_label_smoothed_cross_entropy():
    torch.manual_seed(0)
    model = LeNet()
    images, labels = torch.randint(0, 256, (4, 3, 28, 28), dtype=torch.uint8), torch.tensor([0, 1, 2, 3])
    loss = classification_loss(label_smoothing=0.1, augmentation=False)(model, (images, labels), None)
    logits = model(images.float() / 127.5 - 1)
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)


def test_a_short_run_learns_its_batch(tmp_path, digits_root):
    data = load_train_and_heldout(digits_root, "mnistm", limit=32, progress=False)
    x, y = data.train_images, data.train_labels
    before = evaluate(LeNet(), x, y)["acc"]
    model = train_digit_classifier(
        x,
        y,
        tmp_path / "run",
        "lenet",
        steps=60,
        batch_size=32,
        lr=1e-2,
        augmentation=False,
        label_smoothing=0.0,
        ema_decay=0,
        device="cpu",
    )
    assert model.arch == "lenet" and not model.training
    after = evaluate(model, x, y)
    assert after["acc"] >= 0.5 > before and after["total"] == 32
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 60 and records[-1]["loss"] < records[0]["loss"]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 60


def test_train_grader_writes_what_the_grader_loads(tmp_path, digits_root):
    out = tmp_path / "classifiers"
    result = train_grader(digits_root, "mnistm", out, limit=20, steps=2, device="cpu")
    assert result.arch == "lenet" and result.heldout["total"] == 20 and result.heldout_name == "test"
    assert [p.name for p in result.paths] == ["mnistm_classifier.safetensors", "Classifier.pth"]
    course = torch.load(out / "Classifier.pth", weights_only=True)
    assert set(course) >= {"state_dict", "optimizer"} and course["optimizer"]["state"]
    LeNet().load_state_dict(course["state_dict"])  # as the course's grader does
    a, b = load_digit_classifier(out / "Classifier.pth"), load_digit_classifier(result.paths[0])
    torch.testing.assert_close(a.fc3.weight, b.fc3.weight)
    svhn = train_grader(digits_root, "svhn", out, limit=20, steps=2, device="cpu")
    assert svhn.arch == "smallcnn" and [p.name for p in svhn.paths] == ["svhn_classifier.safetensors"]
    assert isinstance(load_digit_classifier(svhn.paths[0]), SmallCNN)
    with pytest.raises(UserError, match="`resume`"):  # never trains over an earlier run silently
        train_grader(digits_root, "svhn", out, limit=20, steps=2, device="cpu")
    with pytest.raises(UserError, match="unknown architecture"):
        train_grader(digits_root, "svhn", out, arch="vgg", steps=2, device="cpu")
