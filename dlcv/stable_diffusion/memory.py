"""How much GPU memory Stable Diffusion needs, and what to switch on when a card has too little.

The course's card is an 11 GB RTX 2080 Ti. At the defaults (fp16 there, batch 5 for
generation, batch 4 for Textual Inversion, 512x512) the estimates below stay far under
10.5 GB with nothing switched on; the switches are for a card that is shared, smaller,
or runs a format without PyTorch's fused attention (bf16 before compute capability 8.0).

:func:`plan_memory` is the decision, a pure function of the free memory (measured after
the weights are on the card), the batch, the resolution and the dtype. It tries, in
order, until the estimated working memory fits in the free memory less a reserve:

* generation: nothing; sliced VAE decoding (one image at a time); that and sliced attention;
* training: nothing; gradient checkpointing; that, sliced attention and sliced VAE decoding.

When nothing fits it takes the most frugal plan and says so. :func:`auto_memory_plan`
reads the free memory, plans, switches the networks over and prints one line whenever
something was switched on.

The estimates (working memory beyond the weights, at 512x512 in a half type; twice that in
fp32, proportional to the number of pixels) are upper bounds derived from the peak
resident memory of the full-size SD v1 networks with random weights on the CPU (fp32, 256
px, several batch sizes: about 45 MB per UNet row for sampling, 70-190 MB per image for the
VAE decode, 455 MB per sample for a UNet forward and backward), scaled to 512 px and
rounded up for cuDNN workspaces. Attention without a fused kernel adds the
``rows x heads x tokens^2`` score and probability matrices of the largest layer (all
self-attention layers' probabilities when training without checkpointing).

``bench/sd_memory_check.py`` checks the fp32 figures against the live-tensor peaks measured on
the CPU with the full-size networks at 256 and 512 px (``docs/results/sd_memory_check.json``,
rendered in the README; the tolerance: measured / estimated between 1/3 and 1); the half-type
figures rest on the fp32 = 2 x half scaling and stay estimates until ``bench/gpu_check.py`` has
measured the peaks on a GPU (it prints both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from dlcv.runtime import BF16_MIN_CAPABILITY, cuda_capability

GIB = 2**30
#: Working memory per UNet row (one latent of the guided pair) when sampling, 512 px, half type.
UNET_ROW_SAMPLING = 0.15 * GIB
#: Working memory per image of a VAE decode, 512 px, half type (its norms run in fp32).
VAE_DECODE_IMAGE = 0.6 * GIB
#: Saved activations per sample of a UNet forward + backward (Textual Inversion), 512 px, half type.
UNET_SAMPLE_TRAINING = 1.1 * GIB
#: The same with gradient checkpointing (block inputs kept, one block recomputed at a time).
UNET_SAMPLE_CHECKPOINTED = 0.3 * GIB
#: Kept free for cuDNN workspaces, the allocator's fragmentation and small tensors.
RESERVE = 0.75 * GIB
#: SD v1's UNet: attention heads, and the self-attention layers at 1, 1/4 and 1/16 of the
#: largest token count (2 down + 3 up blocks per level, the mid block at the smallest).
HEADS = 8
ATTENTION_LAYERS = ((1, 5), (1 / 4, 5), (1 / 16, 6))
#: diffusers' ``set_attention_slice("auto")``: half the heads of one row at a time.
SLICE_HEADS = HEADS // 2
#: The course's budget for hw2_3.sh, PB3/inference.py and PB3/train.py at their defaults.
COURSE_LIMIT_BYTES = int(10.5e9)


@dataclass(frozen=True)
class MemoryPlan:
    """The switches chosen for a run, with the memory they were chosen for."""

    free_bytes: int
    need_bytes: int  # estimated working memory (beyond the weights) with these switches
    attention_slicing: bool = False
    vae_slicing: bool = False
    gradient_checkpointing: bool = False

    @property
    def fits(self) -> bool:
        return self.need_bytes + RESERVE <= self.free_bytes

    @property
    def switches(self) -> list[str]:
        names = {
            "gradient_checkpointing": "gradient checkpointing",
            "attention_slicing": "sliced attention",
            "vae_slicing": "sliced VAE decoding (one image at a time)",
        }
        return [text for field, text in names.items() if getattr(self, field)]

    def describe(self, what: str) -> str:
        """One line: the free and needed memory, and what was switched on (or that nothing was)."""
        gb = lambda n: f"{n / 1e9:.1f} GB"  # noqa: E731
        head = f"memory: {gb(self.free_bytes)} free, {what} needs about {gb(self.need_bytes + RESERVE)}"
        if not self.switches:
            return f"{head}: no memory savers needed"
        tail = "" if self.fits else " (may still not fit: lower --batch-size or --resolution)"
        return f"{head}: switched on {', '.join(self.switches)}{tail}"


def _attention_bytes(rows: int, tokens: int, elem: int, layers: float, slicing: bool) -> float:
    """Score and probability matrices of unfused attention: 2 x heads x tokens^2 per row and layer
    (``layers``: how many layers' worth are alive at once); sliced, only SLICE_HEADS of one row."""
    per_head = 2 * tokens**2 * elem
    return per_head * (SLICE_HEADS if slicing else rows * HEADS) * layers


def _sizes(resolution: int, dtype: torch.dtype) -> tuple[float, float, int, int]:
    """What the per-row constants (measured at 512 px, fp32 = 2 x half) scale with: the area
    relative to 512 px, the dtype's factor, its element size and the latent's token count."""
    fp32 = dtype == torch.float32
    return (resolution / 512) ** 2, 2.0 if fp32 else 1.0, 4 if fp32 else 2, (resolution // 8) ** 2


def working_bytes(
    batch: int,
    resolution: int,
    dtype: torch.dtype,
    *,
    training: bool = False,
    fused_attention: bool = True,
    attention_slicing: bool = False,
    vae_slicing: bool = False,
    gradient_checkpointing: bool = False,
    decode_batch: int = 4,
) -> int:
    """Estimated working memory (beyond the weights) of one batch: sampling ``batch`` guided
    images then decoding them, or one Textual Inversion step on ``batch`` samples."""
    if training:
        scale, factor, elem, tokens = _sizes(resolution, dtype)
        per = UNET_SAMPLE_CHECKPOINTED if gradient_checkpointing else UNET_SAMPLE_TRAINING
        need = batch * per * scale * factor
        if not fused_attention:
            # without checkpointing every layer's probabilities are saved for the backward pass;
            # with it one layer's are recomputed, next to its scores and their gradient
            saved = sum(n * share**2 for share, n in ATTENTION_LAYERS)
            layers = 1.5 if gradient_checkpointing else saved + 1
            sliced = attention_slicing and gradient_checkpointing  # slices saved for backward add up
            need += _attention_bytes(batch, tokens, elem, layers, sliced)
        return int(need)
    unet, vae = sampling_parts(
        batch,
        resolution,
        dtype,
        fused_attention=fused_attention,
        attention_slicing=attention_slicing,
        vae_slicing=vae_slicing,
        decode_batch=decode_batch,
    )
    return max(unet, vae)


def sampling_parts(
    batch: int,
    resolution: int,
    dtype: torch.dtype,
    *,
    fused_attention: bool = True,
    attention_slicing: bool = False,
    vae_slicing: bool = False,
    decode_batch: int = 4,
) -> tuple[int, int]:
    """The two peaks of sampling ``batch`` guided images, which never coincide: ``(one guided UNet
    forward on 2 x batch rows, one VAE decode of min(batch, decode_batch) images)``, in bytes."""
    scale, factor, elem, tokens = _sizes(resolution, dtype)
    rows = 2 * batch  # the conditional and unconditional halves in one forward
    unet = rows * UNET_ROW_SAMPLING * scale * factor
    if not fused_attention:
        unet += _attention_bytes(rows, tokens, elem, 1, attention_slicing)
    images = 1 if vae_slicing else min(batch, decode_batch)
    vae = images * VAE_DECODE_IMAGE * scale * factor
    return int(unet), int(vae)


def plan_memory(
    free_bytes: int,
    batch: int,
    resolution: int,
    dtype: torch.dtype,
    *,
    training: bool = False,
    fused_attention: bool = True,
    decode_batch: int = 4,
) -> MemoryPlan:
    """The first plan (see the module docstring) whose estimate fits ``free_bytes`` less
    :data:`RESERVE`; the most frugal one when none does. Pure: no device is queried."""
    if training:
        frugal = {"gradient_checkpointing": True, "attention_slicing": True, "vae_slicing": True}
        candidates = [{}, {"gradient_checkpointing": True}, frugal]
    else:
        candidates = [{}, {"vae_slicing": True}, {"vae_slicing": True, "attention_slicing": True}]
    plan = None
    for switches in candidates:
        need = working_bytes(
            batch,
            resolution,
            dtype,
            training=training,
            fused_attention=fused_attention,
            decode_batch=decode_batch,
            **switches,
        )
        plan = MemoryPlan(int(free_bytes), need, **switches)
        if plan.fits:
            break
    return plan


def fused_attention_available(
    device: torch.device, dtype: torch.dtype, capability: tuple[int, int] | None = None
) -> bool:
    """Whether PyTorch's SDPA has a fused (memory-efficient or flash) kernel for ``dtype`` here.

    On CUDA the memory-efficient kernel covers fp16 and fp32 on every card this project
    targets and bf16 only from compute capability 8.0; below it bf16 attention falls back
    to the unfused math kernel, which materialises the attention matrices.
    """
    if device.type != "cuda":
        return True
    capability = capability if capability is not None else cuda_capability(device)
    return dtype != torch.bfloat16 or tuple(capability) >= BF16_MIN_CAPABILITY


def free_cuda_bytes(device: torch.device) -> int:
    """Free memory on a CUDA device now (what the driver reports, other processes included)."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def weight_bytes(*nets: torch.nn.Module) -> int:
    """Bytes of the parameters and buffers of ``nets`` (what loading them puts on the card)."""
    tensors = [t for net in nets for t in (*net.parameters(), *net.buffers())]
    return sum(t.numel() * t.element_size() for t in tensors)


def apply_memory_plan(sd, plan: MemoryPlan, options=None) -> None:
    """Switch ``sd``'s UNet to what ``plan`` asks for; sliced VAE decoding sets
    ``options.decode_batch`` (a :class:`~dlcv.stable_diffusion.generation.SamplingOptions`) to 1."""
    if plan.attention_slicing:
        sd.unet.set_attention_slice("auto")
    if plan.gradient_checkpointing:
        sd.unet.enable_gradient_checkpointing()
    if plan.vae_slicing and options is not None:
        options.decode_batch = 1


def auto_memory_plan(
    sd,
    batch: int,
    resolution: int,
    options=None,
    *,
    training: bool = False,
    log: Callable[[str], None] = print,
) -> MemoryPlan | None:
    """On CUDA: plan from the free memory now (the weights already loaded), apply the plan (to
    ``sd`` and the sampling ``options``), and print one line when something was switched on.
    ``None`` (nothing to decide) on other devices."""
    device = sd.device
    if device.type != "cuda":
        return None
    dtype = sd.dtype
    decode_batch = options.decode_batch if options is not None else 4
    plan = plan_memory(
        free_cuda_bytes(device),
        batch,
        resolution,
        dtype,
        training=training,
        fused_attention=fused_attention_available(device, dtype),
        decode_batch=decode_batch,
    )
    apply_memory_plan(sd, plan, options)
    if plan.switches:
        what = f"{'training at batch' if training else 'batch'} {batch} at {resolution}px ({str(dtype)[6:]})"
        log(plan.describe(what))
    return plan
