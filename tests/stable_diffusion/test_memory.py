"""dlcv.stable_diffusion.memory: the memory estimates at the defaults, and the fallback decision."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from dlcv.stable_diffusion import memory
from dlcv.stable_diffusion.config import sd_v1_config
from dlcv.stable_diffusion.generation import SamplingOptions
from dlcv.stable_diffusion.memory import (
    COURSE_LIMIT_BYTES,
    GIB,
    RESERVE,
    MemoryPlan,
    apply_memory_plan,
    auto_memory_plan,
    fused_attention_available,
    plan_memory,
    sampling_parts,
    weight_bytes,
    working_bytes,
)

from ..conftest import load_script

FP16, BF16, FP32 = torch.float16, torch.bfloat16, torch.float32
#: An RTX 2080 Ti: 11,264 MiB, less about 0.5 GB for the CUDA context before anything is loaded.
RTX_2080_TI_FREE = 11264 * 2**20 - int(0.5e9)


def _parser_defaults(script: str, *argv: str) -> dict:
    """The argument defaults of PB3/{script}.py (parsed with the required arguments ``argv``)."""
    module = load_script(f"PB3/{script}.py", f"defaults_{script}")
    return vars(module.build_parser().parse_args(list(argv)))


@pytest.fixture(scope="module")
def sd_v1_weights() -> dict[str, int]:
    """Parameter bytes per element of SD v1's three networks (built on the meta device: no memory)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    c = sd_v1_config()
    with torch.device("meta"):
        nets = {
            "unet": UNet2DConditionModel(**c.unet),
            "vae": AutoencoderKL(**c.vae),
            "text": CLIPTextModel(CLIPTextConfig(**c.text_encoder)),
        }
    return {name: weight_bytes(net) // 4 for name, net in nets.items()}  # elements


@pytest.mark.parametrize("dtype", [FP16, BF16])  # auto on a 2080 Ti / on compute capability >= 8.0
def test_hw2_3_defaults_fit_the_course_limit(sd_v1_weights, dtype):
    """PB3/inference.py (hw2_3.sh) at its defaults: weights + working memory + reserve under 10.5 GB,
    and on a 2080 Ti nothing needs switching on."""
    args = _parser_defaults("inference", "--json", "x.json", "--out-dir", "out")
    batch, resolution = args["batch_size"], 512
    weights = sum(sd_v1_weights.values()) * 2
    need = working_bytes(batch, resolution, dtype)
    assert weights + need + RESERVE < COURSE_LIMIT_BYTES
    plan = plan_memory(RTX_2080_TI_FREE - weights, batch, resolution, dtype)
    assert plan.fits and plan.switches == []


@pytest.mark.parametrize("dtype", [FP16, BF16])
def test_textual_inversion_defaults_fit_the_course_limit(sd_v1_weights, dtype):
    """PB3/train.py at its defaults: a half-precision UNet, fp32 text encoder and VAE."""
    args = _parser_defaults("train", "--json", "x.json")
    batch, resolution = args["batch_size"], args["resolution"]
    weights = sd_v1_weights["unet"] * 2 + (sd_v1_weights["vae"] + sd_v1_weights["text"]) * 4
    need = working_bytes(batch, resolution, dtype, training=True)
    assert weights + need + RESERVE < COURSE_LIMIT_BYTES
    plan = plan_memory(RTX_2080_TI_FREE - weights, batch, resolution, dtype, training=True)
    assert plan.fits and plan.switches == []


def test_bf16_forced_on_a_2080_ti_still_fits_with_the_fallbacks(sd_v1_weights):
    """bf16 on Turing has no fused attention: the estimates grow, and the plan keeps training
    within the card by switching on gradient checkpointing."""
    assert not fused_attention_available(torch.device("cuda"), BF16, capability=(7, 5))
    weights = sd_v1_weights["unet"] * 2 + (sd_v1_weights["vae"] + sd_v1_weights["text"]) * 4
    plan = plan_memory(RTX_2080_TI_FREE - weights, 4, 512, BF16, training=True, fused_attention=False)
    assert plan.fits and plan.gradient_checkpointing
    assert weights + plan.need_bytes + RESERVE < COURSE_LIMIT_BYTES


def test_generation_falls_back_step_by_step():
    big = plan_memory(40 * GIB, 5, 512, FP16)
    assert big.switches == [] and big.fits
    need_plain = working_bytes(5, 512, FP16)
    need_sliced = working_bytes(5, 512, FP16, vae_slicing=True)
    assert need_sliced < need_plain
    just_short = plan_memory(int(need_plain + RESERVE) - 1, 5, 512, FP16)
    assert just_short.vae_slicing and not just_short.attention_slicing and just_short.fits
    frugal = working_bytes(5, 512, FP16, fused_attention=False, vae_slicing=True, attention_slicing=True)
    assert frugal < working_bytes(5, 512, FP16, fused_attention=False, vae_slicing=True)
    unfused = plan_memory(int(frugal + RESERVE), 5, 512, FP16, fused_attention=False)
    assert unfused.vae_slicing and unfused.attention_slicing and unfused.fits
    hopeless = plan_memory(GIB // 2, 5, 512, FP16)
    assert not hopeless.fits and hopeless.vae_slicing and hopeless.attention_slicing
    assert "may still not fit" in hopeless.describe("batch 5")


def test_training_falls_back_to_gradient_checkpointing():
    need = working_bytes(4, 512, FP16, training=True)
    assert plan_memory(int(need + RESERVE), 4, 512, FP16, training=True).switches == []
    short = plan_memory(int(need + RESERVE) - 1, 4, 512, FP16, training=True)
    assert short.gradient_checkpointing and not short.attention_slicing and short.fits


def test_sampling_needs_the_larger_of_its_two_peaks():
    """The guided UNet forward and the VAE decode never run at once: sampling needs the larger (the
    VAE at the defaults' batch 5, the UNet once the decode is sliced to one image). How the parts
    grow with batch and resolution is checked against measured peaks in tests/dlcv_bench/test_sd_memory.py."""
    unet, vae = sampling_parts(5, 512, FP16)
    assert working_bytes(5, 512, FP16) == max(unet, vae) == vae
    sliced_unet, one_image = sampling_parts(5, 512, FP16, vae_slicing=True)
    assert sliced_unet == unet and one_image == vae // 4
    assert working_bytes(5, 512, FP16, vae_slicing=True) == unet
    assert working_bytes(5, 512, BF16) < working_bytes(5, 512, BF16, fused_attention=False)


def test_fused_attention_by_card_and_dtype():
    cuda = torch.device("cuda")
    assert fused_attention_available(cuda, FP16, capability=(7, 5))
    assert fused_attention_available(cuda, FP32, capability=(7, 5))
    assert not fused_attention_available(cuda, BF16, capability=(7, 5))
    assert fused_attention_available(cuda, BF16, capability=(8, 0))
    assert fused_attention_available(torch.device("cpu"), BF16)


def test_the_plan_is_applied_and_said_in_one_line(monkeypatch, tiny_sd_model):
    """auto_memory_plan on a (pretend) CUDA device: short of memory it switches the UNet and
    the decode batch over and prints one line; with plenty it stays quiet."""
    from diffusers.models.attention_processor import SlicedAttnProcessor

    from dlcv.stable_diffusion.tiny import build_tiny_sd

    unet = build_tiny_sd(seed=1).unet
    fake = SimpleNamespace(device=torch.device("cuda"), dtype=FP16, unet=unet)
    monkeypatch.setattr(memory, "cuda_capability", lambda device: (7, 5))
    lines: list[str] = []

    monkeypatch.setattr(memory, "free_cuda_bytes", lambda device: 40 * GIB)
    options = SamplingOptions()
    plan = auto_memory_plan(fake, 5, 512, options, log=lines.append)
    assert plan.switches == [] and lines == [] and options.decode_batch == 4

    monkeypatch.setattr(memory, "free_cuda_bytes", lambda device: int(2.5 * GIB))
    plan = auto_memory_plan(fake, 5, 512, options, log=lines.append)
    assert plan.vae_slicing and options.decode_batch == 1
    assert len(lines) == 1 and lines[0].startswith("memory: 2.7 GB free, batch 5 at 512px (float16) needs")
    assert "sliced VAE decoding" in lines[0]

    monkeypatch.setattr(memory, "free_cuda_bytes", lambda device: GIB)
    plan = auto_memory_plan(fake, 4, 512, None, training=True, log=lines.append)
    assert plan.gradient_checkpointing and plan.attention_slicing
    assert unet.is_gradient_checkpointing
    assert all(isinstance(p, SlicedAttnProcessor) for p in unet.attn_processors.values())
    assert "gradient checkpointing" in lines[-1] and len(lines) == 2
    assert auto_memory_plan(tiny_sd_model, 4, 32) is None  # nothing to decide on the CPU


def test_apply_nothing_changes_nothing():
    from dlcv.stable_diffusion.tiny import build_tiny_sd

    sd = build_tiny_sd(seed=2)
    before = {k: type(p) for k, p in sd.unet.attn_processors.items()}
    options = SamplingOptions()
    apply_memory_plan(sd, MemoryPlan(10 * GIB, GIB), options)
    assert {k: type(p) for k, p in sd.unet.attn_processors.items()} == before
    assert options.decode_batch == 4 and not sd.unet.is_gradient_checkpointing
