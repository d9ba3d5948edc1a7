"""``evaluation/digit_classifier.py`` as a user runs it: the course's files, its lines, its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from dlcv.cli import UserError
from dlcv.data.synthetic_digits import render_mnistm_style, render_svhn_style

from ..conftest import load_script, run_script
from ..digits.test_classifiers import course_resnet34

COURSE_TRANSFORM = transforms.Compose(
    [transforms.Resize((28, 28)), transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3)]
)


class CourseLeNet(nn.Module):
    """The course's MNIST-M classifier, written out from the spec (not imported from dlcv)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(256, 128), nn.Linear(128, 64), nn.Linear(64, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2).flatten(1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Generated digits (2 per digit per dataset; SVHN at 32x32), the course's LeNet file saved the
    course's way, and a ResNet-34 plain state dict (random weights)."""
    root = tmp_path_factory.mktemp("grade")
    rng = np.random.default_rng(0)
    digits = np.repeat(np.arange(10), 2)
    for name, render in (("mnistm", render_mnistm_style), ("svhn", render_svhn_style)):
        (root / "out" / name).mkdir(parents=True)
        for k, (d, pixels) in enumerate(zip(digits, render(digits, rng), strict=True)):
            image = Image.fromarray(pixels)
            image = image.resize((32, 32)) if name == "svhn" else image
            image.save(root / "out" / name / f"{d}_{k % 2 + 1:03d}.png")
    torch.manual_seed(0)
    lenet, resnet = CourseLeNet().eval(), course_resnet34().eval()
    with torch.no_grad():  # spread the BN statistics so that the random ResNet's classes vary
        for module in resnet.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    optimizer = torch.optim.Adam(lenet.parameters())
    (root / "ckpt").mkdir()
    torch.save(
        {"state_dict": lenet.state_dict(), "optimizer": optimizer.state_dict()},
        root / "ckpt" / "Classifier.pth",
    )
    torch.save(resnet.state_dict(), root / "ckpt" / "resnet34_svhn.pth")
    expected = []
    for name, model in (("mnistm", lenet), ("svhn", resnet)):
        files = sorted((root / "out" / name).iterdir())
        x = torch.stack([COURSE_TRANSFORM(Image.open(p).convert("RGB")) for p in files])
        labels = torch.tensor([int(p.name[0]) for p in files])
        with torch.no_grad():
            expected.append(int((model(x).argmax(1) == labels).sum()))
    return root, expected


def entry_point():
    return load_script("evaluation/digit_classifier.py", "digit_classifier_entry")


def test_course_files_give_the_course_lines(setup):
    root, (m_correct, s_correct) = setup
    assert 0 < m_correct < 20 and 0 < s_correct < 20, "the random classifiers should be right sometimes"
    result = run_script(
        "evaluation/digit_classifier.py",
        "--folder",
        str(root / "out"),
        "--checkpoint",
        str(root / "ckpt" / "Classifier.pth"),
        "--svhn-checkpoint",
        str(root / "ckpt" / "resnet34_svhn.pth"),
        "--device",
        "cpu",
        "--batch-size",
        "8",
    )
    assert result.returncode == 0, result.stderr
    m_acc, s_acc = m_correct / 20, s_correct / 20
    assert result.stdout.splitlines() == [
        f"MNIST-M acc = {m_acc:.4f} (correct/total = {m_correct}/20)",
        f"SVHN acc = {s_acc:.4f} (correct/total = {s_correct}/20)",
        f"acc = {(m_acc + s_acc) / 2:.4f}",
    ]


def test_svhn_classifier_found_next_to_checkpoint(setup, capsys):
    root, (m_correct, s_correct) = setup
    entry_point().main(
        [
            "--folder",
            str(root / "out"),
            "--checkpoint",
            str(root / "ckpt" / "Classifier.pth"),
            "--device",
            "cpu",
            "--details",
        ]
    )
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 3 and lines[1].endswith(f"(correct/total = {s_correct}/20)")
    assert "resnet34_svhn.pth (found next to --checkpoint)" in captured.err
    assert "MNIST-M per digit" in captured.err


def test_json_holds_the_printed_numbers_and_the_checkpoints(setup, tmp_path, capsys):
    root, (m_correct, s_correct) = setup
    path = tmp_path / "sub" / "grades.json"
    entry_point().main(
        [
            "--folder",
            str(root / "out"),
            "--checkpoint",
            str(root / "ckpt" / "Classifier.pth"),
            "--device",
            "cpu",
            "--json",
            str(path),
        ]
    )
    record = json.loads(path.read_text())
    assert (record["mnistm"]["correct"], record["svhn"]["correct"]) == (m_correct, s_correct)
    assert record["svhn"]["total"] == 20
    assert sum(c for c, _ in record["svhn"]["per_digit"].values()) == s_correct
    assert record["acc"] == pytest.approx((m_correct + s_correct) / 40)
    assert record["svhn_checkpoint"] == str((root / "ckpt" / "resnet34_svhn.pth").resolve())
    assert record["folder"] == str((root / "out").resolve()) and record["baselines"]["strong"] == 0.95
    assert capsys.readouterr().out.splitlines()[2] == f"acc = {record['acc']:.4f}"


def test_bad_input_exits_2_with_one_line(setup, tmp_path, monkeypatch, capsys):
    """What ``run(main)`` under ``__main__`` does with a bad input (in-process: no start-up cost)."""
    root, _ = setup
    module = entry_point()
    monkeypatch.setattr(
        "sys.argv",
        [
            "digit_classifier.py",
            "--folder",
            str(tmp_path / "none"),
            "--checkpoint",
            str(root / "ckpt" / "Classifier.pth"),
        ],
    )
    with pytest.raises(SystemExit) as exit_info:
        module.run(module.main)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: --folder not found: {tmp_path / 'none'} (expected {tmp_path / 'none'}/mnistm and "
        f"{tmp_path / 'none'}/svhn with the generated {{digit}}_{{idx:03d}}.png)"
    ]


def run_main(*argv):
    entry_point().main([*argv, "--device", "cpu"])


def test_each_bad_input_is_named(setup, tmp_path):
    root, _ = setup
    lenet = str(root / "ckpt" / "Classifier.pth")
    resnet = str(root / "ckpt" / "resnet34_svhn.pth")
    out = str(root / "out")
    only_mnistm = tmp_path / "only"
    (only_mnistm / "mnistm").mkdir(parents=True)
    with pytest.raises(UserError, match="has no svhn/ sub-folder"):
        run_main("--folder", str(only_mnistm), "--checkpoint", lenet, "--svhn-checkpoint", resnet)
    bad_names = tmp_path / "bad"
    for name in ("mnistm", "svhn"):
        (bad_names / name).mkdir(parents=True)
        file_name = "mnistm_001.png" if name == "svhn" else "0_001.png"
        Image.new("RGB", (28, 28)).save(bad_names / name / file_name)
    with pytest.raises(UserError, match="mnistm_001.png: file names must start with the digit"):
        run_main("--folder", str(bad_names), "--checkpoint", lenet, "--svhn-checkpoint", resnet)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80\x02junk")
    with pytest.raises(UserError, match="cannot read checkpoint .*junk.pth"):
        run_main("--folder", out, "--checkpoint", str(junk), "--svhn-checkpoint", resnet)
    wrong = {k: v for k, v in CourseLeNet().state_dict().items() if not k.startswith("fc3")}
    torch.save({"state_dict": wrong, "optimizer": {}}, tmp_path / "wrong.pth")
    with pytest.raises(UserError, match="wrong.pth does not fit any known architecture.*missing fc3.weight"):
        run_main("--folder", out, "--checkpoint", str(tmp_path / "wrong.pth"), "--svhn-checkpoint", resnet)
    with pytest.raises(UserError, match="does not fit the asked architecture"):
        run_main(
            "--folder", out, "--checkpoint", lenet, "--svhn-checkpoint", lenet, "--svhn-arch", "resnet34"
        )
    with pytest.raises(UserError, match="--svhn-checkpoint not found"):
        run_main("--folder", out, "--checkpoint", lenet, "--svhn-checkpoint", str(tmp_path / "no.pth"))
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "Classifier.pth").write_bytes((root / "ckpt" / "Classifier.pth").read_bytes())
    with pytest.raises(UserError, match="no SVHN classifier: pass `svhn_checkpoint`"):
        run_main("--folder", out, "--checkpoint", str(alone / "Classifier.pth"))
    with pytest.raises(UserError, match="--batch-size must be 1-65,536"):
        run_main("--folder", out, "--checkpoint", lenet, "--batch-size", "0")
