"""``evaluation/train_classifier.py`` as a user runs it: a few steps write checkpoints the grader loads."""

from __future__ import annotations

import pytest
import torch

from dlcv.cli import UserError
from dlcv.digits.classifiers import LeNet, SmallCNN, load_digit_classifier

from ..conftest import load_script, run_script


def entry_point(name: str = "train_classifier"):
    return load_script(f"evaluation/{name}.py", f"{name}_entry")


def test_a_few_steps_write_loadable_graders(tmp_path, digits_root, capsys):
    out = tmp_path / "classifiers"
    result = run_script(
        "evaluation/train_classifier.py",
        "--data",
        str(digits_root),
        "--dataset",
        "both",
        "--out",
        str(out),
        "--steps",
        "3",
        "--limit",
        "20",
        "--device",
        "cpu",
        "--threads",
        "1",
    )
    assert result.returncode == 0, result.stderr
    for name in ("Classifier.pth", "mnistm_classifier.safetensors", "svhn_classifier.safetensors"):
        assert f"  {out / name}\n" in result.stdout
    assert "mnistm: lenet held-out (test) acc = " in result.stdout
    assert "(correct/total = " in result.stdout and "/20), trained on 20 images" in result.stdout
    svhn = out / "svhn_classifier.safetensors"
    assert f"--checkpoint {out / 'Classifier.pth'} --svhn-checkpoint {svhn}" in result.stdout
    course = torch.load(out / "Classifier.pth", weights_only=True)
    LeNet().load_state_dict(course["state_dict"])  # the course's grader reads it unchanged
    assert isinstance(load_digit_classifier(out / "svhn_classifier.safetensors"), SmallCNN)
    assert torch.load(out / "train_svhn" / "checkpoint.pt", weights_only=True)["step"] == 3

    # the grader takes them: grade two of the training images per dataset
    folder = tmp_path / "generated"
    for dataset in ("mnistm", "svhn"):
        (folder / dataset).mkdir(parents=True)
        rows = (digits_root / dataset / "train.csv").read_text().splitlines()[1:3]
        for i, row in enumerate(rows, start=1):
            name, label = row.split(",")
            image = (digits_root / dataset / "data" / name).read_bytes()
            (folder / dataset / f"{label}_{i:03d}.png").write_bytes(image)
    capsys.readouterr()
    grade = entry_point("digit_classifier").main
    grade(["--folder", str(folder), "--checkpoint", str(out / "Classifier.pth"), "--device", "cpu"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" = ")[0] for line in lines] == ["MNIST-M acc", "SVHN acc", "acc"]
    assert lines[0].endswith("/2)") and lines[1].endswith("/2)")


def test_bad_arguments_are_named(tmp_path, digits_root):
    main = entry_point().main
    with pytest.raises(UserError, match="--data not found"):
        main(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    with pytest.raises(UserError, match="--steps must be at least 1"):
        main(["--data", str(digits_root), "--out", str(tmp_path / "o"), "--steps", "0"])
    with pytest.raises(UserError, match="--time-budget must be positive"):
        main(["--data", str(digits_root), "--out", str(tmp_path / "o"), "--time-budget", "-1"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"):
        main(["--data", str(digits_root), "--out", str(tmp_path / "file")])
    (tmp_path / "digits" / "mnistm").mkdir(parents=True)
    with pytest.raises(UserError, match="svhn"):
        main(["--data", str(tmp_path / "digits"), "--dataset", "svhn", "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):  # argparse: an unknown choice
        main(["--data", str(digits_root), "--out", str(tmp_path / "o"), "--dataset", "cifar"])
