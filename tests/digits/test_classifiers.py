"""The grader's classifiers: the course's architectures and every checkpoint format they come in."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torchvision.models import resnet34

from dlcv.cli import UserError
from dlcv.digits.classifiers import (
    ARCHITECTURES,
    LeNet,
    SmallCNN,
    build_digit_classifier,
    load_digit_classifier,
    save_course_checkpoint,
    save_digit_classifier,
    svhn_resnet34,
)

# The course's Classifier.pth state_dict (docs/course_interface.md).
COURSE_LENET_SHAPES = {
    "conv1.weight": (6, 3, 5, 5),
    "conv1.bias": (6,),
    "conv2.weight": (16, 6, 5, 5),
    "conv2.bias": (16,),
    "fc1.weight": (128, 256),
    "fc1.bias": (128,),
    "fc2.weight": (64, 128),
    "fc2.bias": (64,),
    "fc3.weight": (10, 64),
    "fc3.bias": (10,),
}


def course_resnet34() -> nn.Module:
    """The course's SVHN network written out independently: CIFAR stem, no max-pool, 10 classes."""
    model = resnet34(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


@pytest.fixture(scope="module")
def resnet_state():
    torch.manual_seed(3)
    return course_resnet34().state_dict()


def test_lenet_matches_the_course_state_dict():
    model = LeNet()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == COURSE_LENET_SHAPES
    assert model(torch.zeros(2, 3, 28, 28)).shape == (2, 10)


def test_lenet_forward_is_the_spec_forward():
    torch.manual_seed(0)
    model, x = LeNet(), torch.randn(3, 3, 28, 28)
    F = torch.nn.functional
    h = F.max_pool2d(F.relu(F.conv2d(x, model.conv1.weight, model.conv1.bias)), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, model.conv2.weight, model.conv2.bias)), 2).flatten(1)
    h = F.relu(F.linear(h, model.fc1.weight, model.fc1.bias))
    h = F.relu(F.linear(h, model.fc2.weight, model.fc2.bias))
    torch.testing.assert_close(model(x), F.linear(h, model.fc3.weight, model.fc3.bias))


def test_resnet34_has_the_course_keys_and_stem(resnet_state):
    model = svhn_resnet34()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in resnet_state.items()}
    assert ours["conv1.weight"] == (64, 3, 3, 3) and "conv1.bias" not in ours
    assert ours["fc.weight"] == (10, 512)
    assert isinstance(model.maxpool, nn.Identity) and model.conv1.stride == (1, 1)


def test_small_cnn_and_builder():
    assert SmallCNN()(torch.zeros(2, 3, 28, 28)).shape == (2, 10)
    assert set(ARCHITECTURES) == {"lenet", "resnet34", "smallcnn"}
    assert isinstance(build_digit_classifier("lenet"), LeNet)
    with pytest.raises(UserError, match="unknown classifier architecture 'vgg'"):
        build_digit_classifier("vgg")


def stepped_lenet(seed: int, optimizer_class: type = torch.optim.Adam) -> tuple[LeNet, torch.optim.Optimizer]:
    """A LeNet after one optimiser step (so the optimiser holds state, as in the course's file)."""
    torch.manual_seed(seed)
    model = LeNet()
    optimizer = optimizer_class(model.parameters())
    model(torch.randn(4, 3, 28, 28)).sum().backward()
    optimizer.step()
    return model, optimizer


def test_course_classifier_pth_loads_unchanged(tmp_path):
    """A file saved exactly as the course saved Classifier.pth (model + Adam state)."""
    model, optimizer = stepped_lenet(1)
    path = tmp_path / "Classifier.pth"
    torch.save({"state_dict": model.state_dict(), "optimizer": optimizer.state_dict()}, path)
    torch.load(path, weights_only=True)  # the format is weights_only-safe
    loaded = load_digit_classifier(path)
    assert isinstance(loaded, LeNet) and loaded.arch == "lenet" and not loaded.training
    x = torch.randn(2, 3, 28, 28)
    torch.testing.assert_close(loaded(x), model(x))


def test_save_course_checkpoint_round_trip(tmp_path):
    model, optimizer = stepped_lenet(2, torch.optim.AdamW)
    path = save_course_checkpoint(model, optimizer.state_dict(), tmp_path / "sub" / "Classifier.pth")
    payload = torch.load(path, weights_only=True)
    assert set(payload) >= {"state_dict", "optimizer"}
    assert {k: tuple(v.shape) for k, v in payload["state_dict"].items()} == COURSE_LENET_SHAPES
    assert payload["optimizer"]["state"]  # the optimiser moments are kept, as in the course file
    course_style = LeNet()
    course_style.load_state_dict(payload["state_dict"])  # what the course's grader does
    torch.testing.assert_close(load_digit_classifier(path).fc3.weight, model.fc3.weight)
    assert not list(path.parent.glob("*.tmp*"))


@pytest.mark.parametrize("prefix", ["", "module."])
def test_plain_resnet34_state_dict_is_recognised(tmp_path, resnet_state, prefix):
    path = tmp_path / "resnet34_svhn.pth"
    torch.save({prefix + k: v for k, v in resnet_state.items()}, path)
    model = load_digit_classifier(path)
    assert model.arch == "resnet34"
    torch.testing.assert_close(model.layer4[2].bn2.running_var, resnet_state["layer4.2.bn2.running_var"])


def test_safetensors_round_trip_keeps_arch_and_metadata(tmp_path):
    torch.manual_seed(4)
    model = SmallCNN()
    path = save_digit_classifier(
        model, tmp_path / "svhn_classifier.safetensors", "smallcnn", {"heldout_acc": 0.5}
    )
    loaded = load_digit_classifier(path)
    assert loaded.arch == "smallcnn"
    x = torch.randn(2, 3, 28, 28)
    model.eval()
    torch.testing.assert_close(loaded(x), model(x))


def test_bad_files_give_one_clear_error(tmp_path, resnet_state):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read checkpoint .*junk.pth"):
        load_digit_classifier(junk)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x00" * 16)
    with pytest.raises(UserError, match="bad.safetensors"):
        load_digit_classifier(bad_st)
    with pytest.raises(UserError, match="not found"):
        load_digit_classifier(tmp_path / "missing.pth")


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Evil()}, f, protocol=2)
    with pytest.raises(UserError, match="needs builtins.print to load, which is refused"):
        load_digit_classifier(path)
    assert "code ran" not in capsys.readouterr().out


def test_wrong_architecture_is_named(tmp_path, resnet_state):
    wrong = {k: v for k, v in LeNet().state_dict().items()}
    wrong["fc1.weight"] = torch.zeros(128, 400)  # a LeNet for 32x32 inputs
    path = tmp_path / "lenet32.pth"
    torch.save({"state_dict": wrong, "optimizer": {}}, path)
    with pytest.raises(UserError, match=r"does not fit any known architecture.*fc1.weight: \(128, 400\)"):
        load_digit_classifier(path)
    good = tmp_path / "resnet.safetensors"
    save_file({k: v.contiguous() for k, v in resnet_state.items()}, str(good))
    with pytest.raises(UserError, match="does not fit the asked architecture"):
        load_digit_classifier(good, arch="lenet")
    empty = tmp_path / "empty.pth"
    torch.save({"optimizer": {}}, empty)
    with pytest.raises(UserError, match="holds no state dict"):
        load_digit_classifier(empty)
