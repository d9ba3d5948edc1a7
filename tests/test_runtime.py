"""dlcv.runtime: the one precision rule (compute capability, explicit flag, CPU) and its autocast."""

from __future__ import annotations

import pytest
import torch

from dlcv.cli import UserError
from dlcv.runtime import autocast, grad_scaler, pick_device, resolve_dtype, resolve_precision

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.fixture
def card(monkeypatch):
    """Pretend to be a CUDA card of a given compute capability (no GPU needed: nothing runs on it).
    torch.cuda.is_bf16_supported() says yes on every card, as current torch does on Turing."""

    def set_capability(major: int, minor: int) -> None:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (major, minor))
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

    return set_capability


@pytest.mark.parametrize(
    "capability, expected",
    [
        ((7, 5), "fp16"),  # RTX 2080 Ti (Turing), the course's card: no bf16 units
        ((7, 0), "fp16"),  # V100
        ((8, 0), "bf16"),  # A100
        ((8, 6), "bf16"),  # RTX 3090
        ((9, 0), "bf16"),
    ],  # H100 / H200
)
def test_auto_follows_compute_capability(card, capability, expected):
    card(*capability)
    assert resolve_precision("auto", CUDA) == expected
    assert resolve_dtype("auto", CUDA) == {"fp16": torch.float16, "bf16": torch.bfloat16}[expected]


def test_auto_is_fp32_on_the_cpu(card):
    card(9, 0)  # a GPU in the machine changes nothing for the CPU
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_dtype("auto", "cpu") == torch.float32


@pytest.mark.parametrize("capability", [(7, 5), (8, 0)])
@pytest.mark.parametrize("explicit", ["fp32", "fp16", "bf16"])
def test_an_explicit_precision_wins_everywhere(card, capability, explicit):
    card(*capability)
    assert resolve_precision(explicit, CUDA) == explicit
    assert resolve_precision(explicit, CPU) == explicit


def test_a_problem_exception_changes_auto_on_cuda_only(card):
    card(7, 5)
    assert resolve_precision("auto", CUDA, auto="tf32", choices=("auto", "fp32", "tf32")) == "tf32"
    assert resolve_dtype("auto", CUDA, auto="tf32", choices=("auto", "tf32")) == torch.float32
    assert resolve_precision("auto", CPU, auto="fp16") == "fp32"
    assert resolve_precision("bf16", CUDA, auto="fp16") == "bf16"


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(UserError, match=r"`precision` must be one of auto, fp32, fp16, bf16, got 'fp8'"):
        resolve_precision("fp8", CPU)
    with pytest.raises(UserError, match="`precision`"):
        resolve_precision("tf32", CPU)  # only where the caller offers it


def test_autocast_follows_the_rule(card):
    with autocast(CPU):
        assert not torch.is_autocast_enabled("cpu")  # fp32 on the CPU: no autocast
    with autocast(CPU, torch.bfloat16):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with autocast(CPU, torch.bfloat16, enabled=False):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(CPU, torch.bfloat16):
        with autocast(CPU, torch.float32):  # an fp32 network inside a half-precision region
            assert not torch.is_autocast_enabled("cpu")
        with autocast(CPU, enabled=False):
            assert torch.is_autocast_enabled("cpu")
    with pytest.raises(TypeError, match="enabled="):
        autocast(CPU, True)  # the old autocast(device, enabled) call


def test_grad_scaler_only_for_fp16():
    assert grad_scaler(CPU, torch.float16).is_enabled()
    assert not grad_scaler(CPU, torch.bfloat16).is_enabled()
    assert not grad_scaler(CPU, torch.float32).is_enabled()


def test_argument_errors_name_arguments_and_the_command_line_names_flags():
    from dlcv.cli import ArgumentError

    err = ArgumentError("`resume`: no checkpoint at out/x.pt; `batch_size` must be positive")
    assert str(err).startswith("`resume`: no checkpoint")
    assert err.command_line() == "--resume: no checkpoint at out/x.pt; --batch-size must be positive"
    assert err.command_line({"batch_size": "--batch_size"}).endswith("--batch_size must be positive")


@pytest.mark.parametrize("name", ["mps", "xla", "ipu", "meta", "hpu", "vulkan"])
def test_pick_device_refuses_device_types_the_project_does_not_run_on(name):
    expected = rf"^`device` {name}: this project runs on auto, cpu, cuda or cuda:N, not {name}$"
    with pytest.raises(UserError, match=expected):
        pick_device(name)


def test_pick_device_names_a_missing_cuda_device_and_a_bad_name(monkeypatch):
    assert pick_device("cpu") == CPU
    with pytest.raises(UserError, match=r"^`device` 'gpu0': expected auto, cpu, cuda or cuda:N$"):
        pick_device("gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UserError, match=r"^`device` cuda:2: this machine has 2 CUDA device\(s\)"):
        pick_device("cuda:2")
