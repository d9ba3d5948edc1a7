"""How fast SD v1's UNet runs on the course's RTX 2080 Ti: arithmetic from published figures, stated.

Nothing here runs on a 2080 Ti. :func:`derive` turns the card's published fp16 tensor throughput
into UNet evaluations per second (one latent through the UNet at 512 px; a guided step is two)
with one assumption, and ``bench/sd_unet_flops.py`` writes the arithmetic to
``docs/results/sd_unet_flops.json``, where
:data:`dlcv.stable_diffusion.generation.RTX_2080_TI_UNET_EVALS_PER_S` comes from.

1. **The work.** :func:`unet_flops` counts one evaluation of the full-size SD v1 UNet at a 64x64
   latent (512 px), batch 1, with ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add is
   2 FLOPs; convolutions, linear layers and the attention matmuls, nothing else), the model built on
   the ``meta`` device (shapes only: no memory, no time).
2. **The card.** NVIDIA's Turing architecture whitepaper (2018, the GeForce RTX 2080 Ti's column:
   544 Tensor Cores, boost clock 1545 MHz for the reference design, 1635 MHz for the Founders
   Edition) gives the peak FP16 Tensor throughput as 107.6 / 113.8 TFLOPS with FP16 accumulate and
   53.8 / 56.9 TFLOPS with FP32 accumulate: GeForce Turing cards run FP32 accumulation at half rate
   (544 x 64 FMA x 2 FLOPs x 1.545 GHz = 107.6; halved, 53.8). PyTorch's fp16 matmuls accumulate in
   fp32 (``aten/src/ATen/cuda/CUDABlas.cpp``: ``cublasGemmEx`` with a ``CUDA_R_32F`` compute type)
   and so do its cuDNN convolutions on half data (``aten/src/ATen/cudnn/Descriptors.h``: the
   convolution's math type is float for ``CUDNN_DATA_HALF``), so the UNet under fp16 autocast runs
   at the **FP32-accumulate** rate; measured PyTorch fp16 matmuls and convolutions on a 2080 Ti reach
   53.4 and 51.9 TFLOPS (ypwhs' benchmark gist, PyTorch 1.0 / CUDA 10), that ceiling and not the
   other. We take the reference clock's **53.8 TFLOPS** (a partner card may run at the reference
   clock; the Founders Edition's would be 6% faster).
3. **The assumption: the fraction of that peak the UNet reaches.** Large matmuls reach 95-100% of it
   (the measurements above), but a UNet at batch 1 spends much of its time in memory-bound work
   (normalisations, activations, attention at 4,096 tokens) that counts no FLOPs. The fraction is
   taken from a published measurement of the same workload on a card of the same architecture:
   diffusers' "Accelerated PyTorch 2.0 support" benchmark (``docs/source/en/optimization/torch2.0.mdx``,
   diffusers 0.17.0.dev0: SD v1.5, whose UNet is v1.4's, text-to-image at 512x512, fp16,
   channels-last, PyTorch 2.0's SDPA attention, no ``torch.compile``: this project's setup) ran
   **6.9 iterations/s on a Tesla T4 at batch 1** (each iteration one guided UNet forward: 2
   evaluations; at batch 4, 1.79 iterations/s of 8, nearly the same per evaluation), and the T4
   (Turing, 320 Tensor Cores, 1590 MHz boost, 70 W) is rated at **65 TFLOPS** FP16 with FP32
   accumulate (NVIDIA's T4 datasheet). That is about 17% of the T4's peak; the 2080 Ti is assumed
   to reach the same fraction of its own. The T4 is held to 70 W (the 2080 Ti to 250 W) and runs
   below its rated clock under sustained tensor load, so its fraction, and the estimate, lean slow.

Note that the FLOP count cancels out of the estimate (evaluations/s = 2 x 6.9 x 53.8 / 65): it tells
what the fraction is (a sixth of the card's peak), and that both cards run the same work.
"""

from __future__ import annotations

from typing import Any

import torch

#: The GeForce RTX 2080 Ti's peak FP16 Tensor TFLOPS at the reference boost clock (Turing whitepaper).
RTX_2080_TI_TFLOPS = {"fp16_accumulate": 107.6, "fp32_accumulate": 53.8}
RTX_2080_TI_BOOST_MHZ = 1545
#: The accumulation the UNet's fp16 kernels use in PyTorch (cuBLAS and cuDNN compute type float).
ACCUMULATE = "fp32_accumulate"
#: The published measurement the fraction of peak comes from (diffusers' PyTorch 2.0 benchmark).
REFERENCE = {
    "card": "NVIDIA Tesla T4 (Turing, 320 Tensor Cores, 1590 MHz boost, 70 W)",
    "tflops": 65.0,  # FP16 with FP32 accumulate, NVIDIA T4 datasheet
    "iterations_per_s": 6.9,  # SD v1.5 txt2img, batch 1, 512x512, fp16, torch 2.0 SDPA, no compile
    "evaluations_per_iteration": 2,  # classifier-free guidance: both halves in one forward
    "source": "diffusers docs, Accelerated PyTorch 2.0 support, benchmark table 'T4 (batch size: 1)', "
    "SD - txt2img, torch 2.0 - no compile (diffusers 0.17.0.dev0)",
}
#: One SD v1 UNet evaluation: the latent side at 512 px and the batch.
LATENT, BATCH = 64, 1
#: The constant before it had a source (7 guided steps/s, cited to nothing).
PREVIOUS_EVALS_PER_S = 14.0


def unet_flops(unet_config: dict[str, Any] | None = None, latent: int = LATENT, batch: int = BATCH) -> dict:
    """FLOPs of one forward of a diffusers ``UNet2DConditionModel`` of ``unet_config`` (default SD v1's)
    on ``batch`` latents of ``latent x latent``, counted by ``FlopCounterMode`` on the meta device:
    ``{"total": ..., "by_op": {aten op: FLOPs}}``."""
    from diffusers import UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0
    from torch.utils.flop_counter import FlopCounterMode

    from dlcv.stable_diffusion.config import SD_V1_UNET
    from dlcv.stable_diffusion.loading import quiet_diffusers

    config = dict(unet_config or SD_V1_UNET)
    meta = torch.device("meta")
    with meta, quiet_diffusers():
        unet = UNet2DConditionModel(**config)
    unet.set_attn_processor(AttnProcessor2_0())  # the project's attention (prepare_for_inference)
    x = torch.empty(batch, config["in_channels"], latent, latent, device=meta)
    context = torch.empty(batch, 77, config["cross_attention_dim"], device=meta)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(x, torch.full((batch,), 500, device=meta), encoder_hidden_states=context)
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    return {"total": int(counter.get_total_flops()), "by_op": by_op}


def derive(flops: int) -> dict:
    """The arithmetic: the reference card's achieved FLOP/s and fraction of peak, the 2080 Ti's
    evaluations/s at that fraction, and the upper bound at 100% of its peak."""
    ref = REFERENCE
    achieved = ref["iterations_per_s"] * ref["evaluations_per_iteration"] * flops
    utilization = achieved / (ref["tflops"] * 1e12)
    peak = RTX_2080_TI_TFLOPS[ACCUMULATE] * 1e12
    evals = peak * utilization / flops
    return {
        "reference_achieved_tflops": achieved / 1e12,
        "utilization": utilization,
        "evals_per_s": evals,
        "evals_per_s_rounded": round(evals, 1),
        "evals_per_s_at_peak": peak / flops,
    }


def hw2_3_seconds(evals_per_s: float, images: int = 100) -> list[dict]:
    """UNet seconds for ``images`` at hw2_3.sh's default sampler and two alternatives (DDIM 50, the
    old default; DPM-Solver++ 25), guidance 7.5: ``[{"sampler", "steps", "evaluations", "seconds"}]``."""
    from dlcv.stable_diffusion.generation import (
        DEFAULT_SOLVER,
        DEFAULT_STEPS,
        SamplingOptions,
        unet_evaluations,
    )

    guidance = SamplingOptions().guidance
    settings = [("ddim", 50), ("dpm++", 25), (DEFAULT_SOLVER, DEFAULT_STEPS)]
    rows = []
    for solver, steps in settings:
        evaluations = unet_evaluations(images, steps, guidance)
        rows.append(
            {
                "solver": solver,
                "steps": steps,
                "guidance": guidance,
                "default": (solver, steps) == (DEFAULT_SOLVER, DEFAULT_STEPS),
                "evaluations": evaluations,
                "seconds": evaluations / evals_per_s,
            }
        )
    return rows
