"""Training the world's UNet on its captioned digits (:class:`WorldTraining`, :func:`train_world`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dlcv.stable_diffusion.generation import encode_text
from dlcv.stable_diffusion.loading import StableDiffusion
from dlcv.training import TrainConfig, train
from dlcv_bench.digit_world.captions import (
    APPEARANCE_WORDS,
    DESCRIPTIONS,
    SHAPE_WORDS,
    WORLD_TEMPLATES,
    filler_words,
    world_captions,
)
from dlcv_bench.digit_world.data import world_data
from dlcv_bench.digit_world.model import encode_images


@dataclass
class WorldTraining:
    """How the world is trained (lengths in optimiser steps)."""

    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    n_images: int = 10000
    held_out: int = 7
    uncond_fraction: float = 0.2  # of the generic-caption images: captioned ""
    generic_fraction: float = 0.5
    # Each appearance word (grain, colour) is in an image's caption with this probability, drawn
    # per step. 0: captions name the digit only, and no token can steer a style (the UNet never
    # saw text that varied with it; measured: Textual Inversion's style rate 0.00 -> 0.03).
    appearance_fraction: float = 0.5
    # Each shape word (loop, weight, base) is in a caption with this probability, drawn per step,
    # for every image (the held-out digit's too: they are measured, not given per digit).
    shape_fraction: float = 0.0
    # A caption carries one filler word (:func:`filler_words`, anywhere in it) with this probability.
    filler_fraction: float = 0.0
    x0_weight_max: float = 50.0  # the loss weight max(1, 1/SNR) is clipped here
    # After the warm-up, cosine decay to this fraction of lr. 1 (constant): the world learns to
    # listen to its captions late in a short run, and a decayed rate stops that (named-digit
    # rate 0.28 constant, 0.11 decayed to 0, in the bench's 1,500 steps).
    min_lr_ratio: float = 1.0
    seed: int = 0


def train_world(
    sd: StableDiffusion,
    out_dir: str | Path,
    opts: WorldTraining,
    device: str = "cpu",
    on_sample: Callable[[nn.Module, int], None] | None = None,
    sample_every: int = 0,
) -> None:
    """Train ``sd``'s UNet on the captioned digits; the EMA weights end in ``sd``.

    The text encoder stays frozen, as SD's CLIP was while SD was trained (trained here from
    scratch for minutes, it collapses every caption to nearly the same states). The run lives in
    ``out_dir`` (``checkpoint.pt``, ``metrics.jsonl``; an interrupted run resumes). Captions are
    drawn per step (:func:`world_captions`): a named template for a named image, a generic
    template (or, with probability ``uncond_fraction``, the empty caption) for a generic one, each
    with the image's appearance words at ``appearance_fraction``, its shape words at
    ``shape_fraction`` and a filler word at ``filler_fraction``.
    ``on_sample(ema_unet, step)`` is called every ``sample_every`` steps and at the end.
    """
    data = world_data(opts.n_images, opts.held_out, opts.seed, opts.generic_fraction)
    sd.text_encoder.eval().requires_grad_(False).to(device)
    x_all = encode_images(sd, data.images)
    abar = sd.schedule.alpha_bar.float()
    fillers = filler_words(sd.tokenizer)
    fractions = torch.tensor(
        [opts.appearance_fraction] * len(APPEARANCE_WORDS) + [opts.shape_fraction] * len(SHAPE_WORDS)
    )

    def next_batch(generator: torch.Generator) -> dict[str, torch.Tensor]:
        b = opts.batch_size
        i = torch.randint(len(x_all), (b,), generator=generator)
        j = torch.randint(len(WORLD_TEMPLATES), (b,), generator=generator)
        shown = torch.rand(b, len(DESCRIPTIONS), generator=generator) < fractions
        empty = data.generic[i] & (torch.rand(b, generator=generator) < opts.uncond_fraction)
        has = (torch.rand(b, generator=generator) < opts.filler_fraction).tolist()
        word = torch.randint(len(fillers), (b,), generator=generator).tolist()
        where = torch.rand(b, generator=generator).tolist()
        extra = [(fillers[w], p) if h else None for h, w, p in zip(has, word, where)]
        return {"x": x_all[i], "cond": encode_text(sd, world_captions(data, i, j, shown, empty, extra))}

    def loss_fn(unet: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        x0 = batch["x"]
        t = torch.randint(0, len(abar), (len(x0),), generator=generator)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = sd.schedule.add_noise(x0, noise, t.to(x0.device))
        pred = unet(x_t, t.to(x0.device), encoder_hidden_states=batch["cond"], return_dict=False)[0]
        per_sample = (pred.float() - noise).pow(2).flatten(1).mean(1)
        # An epsilon model, as SD's; its error weighted like an x0 error (1 / SNR) at high noise,
        # where only the caption can tell what to draw: plain epsilon-MSE leaves that band almost
        # weightless, and a small world then learns to ignore its captions.
        weight = ((1.0 - abar[t]) / abar[t]).clamp(1.0, opts.x0_weight_max).to(x0.device)
        return (weight * per_sample).sum() / weight.sum()

    sd.unet.train().requires_grad_(True)
    ckpt = Path(out_dir) / "checkpoint.pt"
    cfg = TrainConfig(
        out_dir=Path(out_dir),
        steps=opts.steps,
        batch_size=opts.batch_size,
        lr=opts.lr,
        warmup_steps=min(100, opts.steps // 10),
        min_lr_ratio=opts.min_lr_ratio,
        grad_clip=1.0,
        ema_decay=0.995,
        sample_every=sample_every,
        log_every=max(1, min(100, opts.steps // 10)),
        ckpt_every=max(1, opts.steps // 4),
        seed=opts.seed,
        precision="fp32",
        resume=ckpt.is_file(),
        overwrite=not ckpt.is_file(),  # a run killed before its first checkpoint
        device=device,
    )
    trained = train(sd.unet, loss_fn, next_batch, cfg, on_sample=on_sample, config={"world": opts.__dict__})
    sd.unet.load_state_dict(trained.state_dict())
    sd.unet.eval().requires_grad_(False)
