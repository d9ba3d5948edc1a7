"""dlcv_bench/sd_speed.py: the 2080 Ti speed constant is the results file's arithmetic, and the FLOP
count it starts from agrees with a count made another way."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dlcv.stable_diffusion.config import tiny_config
from dlcv.stable_diffusion.generation import RTX_2080_TI_UNET_EVALS_PER_S
from dlcv_bench.render import RESULTS
from dlcv_bench.sd_speed import derive, hw2_3_seconds, unet_flops


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads((RESULTS / "sd_unet_flops.json").read_text())


def test_the_constant_is_the_results_files_arithmetic(recorded):
    """The code's constant is the file's rounded figure; the file's figures are what the published
    numbers in dlcv_bench.sd_speed and today's FLOP count of the full-size UNet give (so neither the
    sources, the SD v1 architecture nor the constant can change without rerunning the bench)."""
    assert RTX_2080_TI_UNET_EVALS_PER_S == recorded["evals_per_s_rounded"]
    flops = unet_flops()  # the full-size SD v1 UNet on the meta device: shapes only, a second
    assert flops == recorded["unet"]["flops"]
    arithmetic = derive(flops["total"])
    assert arithmetic == pytest.approx({k: recorded[k] for k in arithmetic}, rel=1e-12)
    assert hw2_3_seconds(recorded["evals_per_s_rounded"]) == recorded["hw2_3"]["rows"]
    assert 0.05 < arithmetic["utilization"] < 0.5 and 7e11 < flops["total"] < 9e11


def _analytic_flops(unet: nn.Module, *inputs: torch.Tensor, **kwargs: torch.Tensor) -> int:
    """2 x multiply-adds of every convolution and linear layer (from their output shapes) and of the
    two attention matmuls (4 x batch x queries x keys x width), read by forward hooks on the CPU."""
    from diffusers.models.attention_processor import Attention

    total = 0

    def layer(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        else:
            k = module.in_features
        total += 2 * out.numel() * k

    def attention(module: Attention, args: tuple, kw: dict) -> None:
        nonlocal total
        x = args[0] if args else kw["hidden_states"]
        context = kw.get("encoder_hidden_states")
        keys = x.shape[1] if context is None else context.shape[1]
        total += 4 * x.shape[0] * x.shape[1] * keys * module.to_q.out_features

    hooks = [m.register_forward_hook(layer) for m in unet.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    hooks += [
        m.register_forward_pre_hook(attention, with_kwargs=True)
        for m in unet.modules()
        if isinstance(m, Attention)
    ]
    with torch.no_grad():
        unet(*inputs, **kwargs)
    for hook in hooks:
        hook.remove()
    return total


def test_the_flop_count_matches_an_analytic_count_on_a_small_unet():
    """FlopCounterMode on the meta device counts what the layers' shapes say, on a UNet of SD v1's
    exact block layout (4 levels, 2 layers each, self and cross attention) at narrow widths."""
    from diffusers import UNet2DConditionModel

    config = tiny_config(channels=(32, 64, 128, 128), layers_per_block=2, text_width=32).unet
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**config).eval()
    x = torch.randn(2, 4, 16, 16)
    context = torch.randn(2, 77, 32)
    analytic = _analytic_flops(unet, x, torch.full((2,), 500), encoder_hidden_states=context)
    counted = unet_flops(config, latent=16, batch=2)
    assert counted["total"] == analytic
    assert unet_flops(config, latent=32, batch=2)["total"] > 3.5 * analytic  # 4x the pixels
