"""Measure the working memory of Stable Diffusion's sampling and Textual Inversion steps on the CPU,
for the check of :mod:`dlcv.stable_diffusion.memory`'s estimates (``bench/sd_memory_check.py``).

What is measured is what the estimator models: the memory a step allocates beyond what existed
before it (the weights, the text embeddings), at its peak:

* sampling: one guided UNet forward (both halves, ``2 x batch`` rows, no autograd) through the
  project's own eps function (:func:`~dlcv.stable_diffusion.generation.text_eps`), and apart from
  it one VAE decode (:func:`~dlcv.stable_diffusion.generation.decode_latents`) of the images the
  estimator decodes at once; the two never run at the same time;
* Textual Inversion: one loss (:func:`~dlcv.stable_diffusion.textual_inversion.textual_inversion_loss`
  through :class:`~dlcv.stable_diffusion.textual_inversion.TextualInversion`: text encoder, UNet)
  and its backward pass to the placeholder vectors.

The peak is read two ways. :func:`peak_tensor_bytes` replays the allocations and frees of
PyTorch's CPU allocator recorded by ``torch.profiler`` (``profile_memory=True``) and takes the
highest running total: the live tensor bytes, the CPU counterpart of
``torch.cuda.max_memory_allocated`` that the estimator and ``bench/gpu_check.py`` speak of (the
primary figure). :func:`peak_rss_bytes` resets the kernel's resident high-water mark
(``/proc/self/clear_refs``, Linux) and reads ``VmHWM`` after the step, less the resident size
before it: everything the process touched, allocator caches and libraries' scratch buffers
included (a cross-check that the profiler saw the allocations that matter). It reads low where a
step reuses pages an earlier step left resident (the Textual Inversion steps after sampling's).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import torch

#: A step's measured peak may be at most the estimate (the estimator is documented as an upper bound:
#: it must hold on the CPU, which lacks the GPU's cuDNN workspaces and allocator rounding) and at
#: least a third of it (looser would switch memory savers on where they are not needed).
TOLERANCE = (1 / 3, 1.0)
#: The shapes of the full-size check: (batch, resolution) for sampling and for Textual Inversion.
SAMPLING_SHAPES = ((1, 256), (2, 256), (1, 512))
TRAINING_SHAPES = ((1, 256), (2, 256), (1, 512))
STATUS = Path("/proc/self/status")


def peak_tensor_bytes(step: Callable[[], object]) -> int:
    """The most bytes of tensors alive at once during ``step()`` beyond those alive before it, from
    the allocation events of ``torch.profiler`` (CPU allocator)."""
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def _status_bytes(field: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def peak_rss_bytes(step: Callable[[], object]) -> int | None:
    """The resident high-water mark during ``step()`` less the resident size before it (Linux; ``None``
    where ``/proc/self/clear_refs`` cannot reset the mark)."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # 5: reset the peak resident set size
        before = _status_bytes("VmRSS")
    except (OSError, KeyError):
        return None
    step()
    return max(0, _status_bytes("VmHWM") - before)


def measure(step: Callable[[], object]) -> dict[str, int | None]:
    """Both readings of one step, each from its own run of it (the profiler's records are not counted
    in the resident reading)."""
    step()  # warm-up: one-time buffers (oneDNN kernels, the attention processors' state) come first
    return {"tensor_bytes": peak_tensor_bytes(step), "rss_bytes": peak_rss_bytes(step)}


def sampling_steps(sd, batch: int, resolution: int, decode_batch: int = 4) -> dict[str, Callable[[], object]]:
    """``{"unet": ..., "vae": ...}``: one guided UNet forward on ``batch`` images and one VAE decode of
    ``min(batch, decode_batch)`` of them, as hw2_3.sh's sampling runs them (``sd`` prepared for
    inference)."""
    from dlcv.stable_diffusion.generation import decode_latents, encode_text, text_eps

    cond, uncond = encode_text(sd, ["a photo of a cat", ""]).chunk(2)
    eps_fn = text_eps(sd, cond, uncond, 7.5)(torch.arange(batch))
    size = resolution // sd.config.vae_scale
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, sd.config.latent_channels, size, size, generator=g)
    t = torch.full((batch,), 500)
    z = torch.randn(min(batch, decode_batch), sd.config.latent_channels, size, size, generator=g)

    def unet() -> None:
        with torch.no_grad():
            eps_fn(x, t)

    def vae() -> None:
        decode_latents(sd, z, decode_batch)

    return {"unet": unet, "vae": vae}


def probe_token(sd):
    """A :class:`~dlcv.stable_diffusion.textual_inversion.TextualInversion` of a new one-vector token
    ``<probe>`` (initialised from "cat") on ``sd``, which must already be prepared for training."""
    from dlcv.stable_diffusion.textual_inversion import TextualInversion, add_placeholder, init_vectors

    init = init_vectors(sd, "cat")
    return TextualInversion(sd, "<probe>", add_placeholder(sd, "<probe>", init), init)


def training_step(net, batch: int, resolution: int) -> Callable[[], object]:
    """One Textual Inversion step's loss and backward pass on ``batch`` samples of ``net`` (a
    :func:`probe_token`) at ``resolution``."""
    from dlcv.stable_diffusion.textual_inversion import textual_inversion_loss
    from dlcv.stable_diffusion.ti_data import tokenize_captions

    sd = net.sd
    size = resolution // sd.config.vae_scale
    g = torch.Generator().manual_seed(0)
    shape = (batch, sd.config.latent_channels, size, size)
    data = {
        "mean": torch.randn(shape, generator=g),
        "std": torch.full(shape, 0.1),
        "ids": tokenize_captions(sd.tokenizer, [f"a photo of a {net.token}"] * batch),
    }
    schedule, scale = sd.schedule, sd.config.scaling_factor

    def step() -> None:
        loss = textual_inversion_loss(net, data, torch.Generator().manual_seed(1), schedule, scale)
        loss.backward()
        net.vectors.grad = None

    return step


def course_defaults() -> dict:
    """The estimator's figures at the course jobs' defaults, in fp16 (a 2080 Ti): hw2_3.sh's generation
    (:class:`~dlcv.stable_diffusion.course.GenerationJob`'s batch, 512 px, all three networks in fp16)
    and PB3/train.py's Textual Inversion (its batch and resolution; the UNet in fp16, the text encoder
    and the VAE in fp32). Bytes of weights (SD v1 built on the meta device), working memory, the
    reserve, their total and the course's limit."""
    import argparse

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from dlcv.stable_diffusion import memory
    from dlcv.stable_diffusion.config import sd_v1_config
    from dlcv.stable_diffusion.course import GenerationJob
    from dlcv.stable_diffusion.loading import quiet_diffusers
    from dlcv.stable_diffusion.ti_job import add_learning_flags

    config = sd_v1_config()
    with torch.device("meta"), quiet_diffusers():
        nets = {
            "unet": UNet2DConditionModel(**config.unet),
            "vae": AutoencoderKL(**config.vae),
            "text_encoder": CLIPTextModel(CLIPTextConfig(**config.text_encoder)),
        }
    elements = {name: memory.weight_bytes(net) // 4 for name, net in nets.items()}  # fp32 on meta
    parser = argparse.ArgumentParser()
    add_learning_flags(parser)
    training = parser.parse_args([])
    fp16 = torch.float16

    def figures(batch: int, resolution: int, weights: int, working: int) -> dict:
        total = weights + working + int(memory.RESERVE)
        return {
            "batch": batch,
            "resolution": resolution,
            "weight_bytes": weights,
            "working_bytes": working,
            "reserve_bytes": int(memory.RESERVE),
            "total_bytes": total,
        }

    gen_batch = GenerationJob.__dataclass_fields__["batch_size"].default
    return {
        "dtype": "float16",
        "limit_bytes": memory.COURSE_LIMIT_BYTES,
        "weight_elements": elements,
        "generation": figures(
            gen_batch,
            config.resolution,
            sum(elements.values()) * 2,
            memory.working_bytes(gen_batch, 512, fp16),
        ),
        "training": figures(
            training.batch_size,
            training.resolution,
            elements["unet"] * 2 + (elements["vae"] + elements["text_encoder"]) * 4,
            memory.working_bytes(training.batch_size, training.resolution, fp16, training=True),
        ),
    }
