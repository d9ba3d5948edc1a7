"""Textual Inversion step time, split into VAE encoding (one-off), text encoder and UNet.

    python bench/bench_textual_inversion.py                  # tiny SD v1-family model, seconds on a CPU
    python bench/bench_textual_inversion.py --full --resolution 512 --batch-size 4   # SD v1 sizes (GPU)
    python bench/bench_textual_inversion.py --sd-ckpt sd-v1-4.ckpt --resolution 512

Runs the pieces of dlcv.stable_diffusion.textual_inversion the way PB3/train.py does
(frozen networks prepared for training, autocast and a UNet in the half type of the
precision rule on CUDA (bf16 from compute capability 8.0, fp16 below), fp32 embeddings)
on random images: the one-off VAE encoding of the augmented views, then per step the
text encoder forward, the UNet forward + backward (down to the text features), the text
encoder backward (down to the placeholder vectors) and the whole optimiser step as
PB3/train.py runs it. --full builds SD v1's real architecture with
random weights (no download); the timings do not depend on the weights.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from dlcv.diffusion import diffusion_loss
from dlcv.runtime import autocast, configure_backends, pick_device, resolve_dtype
from dlcv.stable_diffusion.config import sd_v1_config, tiny_config
from dlcv.stable_diffusion.textual_inversion import (
    TextualInversion,
    add_placeholder,
    init_vectors,
    prepare_for_training,
)
from dlcv.stable_diffusion.ti_data import (
    OBJECT_TEMPLATES,
    Augmentation,
    augmented_views,
    encode_views,
    tokenize_captions,
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sd-ckpt", help="time a real checkpoint (CompVis file or diffusers folder) instead")
    p.add_argument("--full", action="store_true", help="SD v1's architecture with random weights")
    p.add_argument("--resolution", type=int, help="training resolution (default: 32 tiny, 512 full)")
    p.add_argument("--batch-size", type=int, default=4, help="images per step (default: %(default)s)")
    p.add_argument("--images", type=int, default=5, help="training images (default: %(default)s)")
    p.add_argument("--views", type=int, default=16, help="augmented views per image (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement (default: %(default)s)")
    p.add_argument("--vectors", type=int, default=1, help="vectors of the placeholder token")
    p.add_argument("--gradient-checkpointing", action="store_true", help="as PB3/train.py's flag")
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA too")
    p.add_argument("--device", default="auto")
    return p.parse_args()


def timed(fn: Callable[[], object], device: torch.device, steps: int, warmup: int = 2) -> float:
    """Mean seconds per call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / steps


def main() -> None:
    args = parse_args()
    device = pick_device(args.device)
    configure_backends(device)
    amp = not args.no_amp
    dtype = resolve_dtype("auto" if amp else "fp32", device)
    if args.sd_ckpt:
        from dlcv.stable_diffusion.loading import load_stable_diffusion

        sd, name = load_stable_diffusion(args.sd_ckpt, device=device), args.sd_ckpt
    else:
        from dlcv.stable_diffusion.tiny import build_tiny_sd

        config = sd_v1_config() if args.full else tiny_config()
        sd, name = build_tiny_sd(0, config), "SD v1 architecture, random" if args.full else "tiny SD"
    resolution = args.resolution or sd.config.resolution
    prepare_for_training(sd, device, dtype)
    if args.gradient_checkpointing:
        sd.unet.enable_gradient_checkpointing()
    params = sum(p.numel() for net in (sd.unet, sd.vae, sd.text_encoder) for p in net.parameters())
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    print(
        f"device: {device} ({gpu}{threads}), torch {torch.__version__}; model: {name} ({params / 1e6:.1f}M "
        f"parameters), {resolution}px, batch {args.batch_size}, "
        f"{str(dtype)[6:]}{' autocast' if dtype != torch.float32 else ''}"
    )

    # ---- one-off: the VAE encodes every augmented view --------------------------------------------
    g = torch.Generator().manual_seed(0)
    images = [
        torch.randint(0, 256, (3, resolution + 37, resolution + 11), generator=g, dtype=torch.uint8)
        for _ in range(args.images)
    ]
    aug = Augmentation(resolution, args.views)
    start = time.perf_counter()
    views = augmented_views(images, aug, seed=0)
    crop_time = time.perf_counter() - start
    encode_views(sd.vae, views[:2])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    mean, std = encode_views(sd.vae, views)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    vae_time = time.perf_counter() - start
    print(
        f"one-off: {len(views)} views ({args.images} images x {aug.count()}): augmentation "
        f"{crop_time:.2f}s, VAE encoding {vae_time:.2f}s ({1000 * vae_time / len(views):.1f} ms/view)"
    )

    # ---- per step -----------------------------------------------------------------------------------
    token = "<bench-token>"
    init = init_vectors(sd, "dog", args.vectors)
    ids = add_placeholder(sd, token, init)
    model = TextualInversion(sd, token, ids, init)
    caption = " ".join([token] + [f"{token}_{i}" for i in range(1, args.vectors)])
    caption_ids = tokenize_captions(sd.tokenizer, [OBJECT_TEMPLATES[0].format(caption)] * args.batch_size)
    caption_ids = caption_ids.to(device)
    z0 = (mean[: args.batch_size] * sd.config.scaling_factor).to(device)
    t = torch.randint(0, 1000, (args.batch_size,), generator=g).to(device)
    z_t = sd.schedule.add_noise(z0, torch.randn(z0.shape, generator=g).to(device), t)
    optimizer = torch.optim.AdamW([model.vectors], lr=5e-3, fused=device.type == "cuda")

    def text_forward() -> torch.Tensor:
        with autocast(device, dtype):
            return model.encode(caption_ids)

    def unet_forward_backward() -> None:
        cond = text_forward().detach().requires_grad_(True)
        with autocast(device, dtype):  # the UNet part of TextualInversion.forward
            eps = sd.unet(
                z_t.to(sd.unet.dtype), t, encoder_hidden_states=cond.to(sd.unet.dtype), return_dict=False
            )[0]
        eps.float().square().mean().backward()

    cond_grad = torch.randn(text_forward().shape, generator=g).to(device)

    def text_forward_backward() -> None:
        text_forward().float().backward(cond_grad)
        model.vectors.grad = None

    def full_step() -> None:
        batch_gen = torch.Generator().manual_seed(1)
        with autocast(device, dtype):
            loss = diffusion_loss(lambda z, tt: model(z, tt, caption_ids), z0, sd.schedule, batch_gen)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with torch.no_grad():
        te_fwd = timed(text_forward, device, args.steps)
    te_fb = timed(text_forward_backward, device, args.steps)
    te_fwd_grad = timed(text_forward, device, args.steps)
    unet_fb_plus_te = timed(unet_forward_backward, device, args.steps)
    step = timed(full_step, device, args.steps)
    unet_fb = max(unet_fb_plus_te - te_fwd_grad, 0.0)
    te_bwd = max(te_fb - te_fwd_grad, 0.0)
    ms = lambda s: f"{1000 * s:8.1f} ms"  # noqa: E731
    print(f"per step (batch {args.batch_size}), mean of {args.steps}:")
    print(f"  text encoder forward       {ms(te_fwd_grad)}   ({ms(te_fwd).strip()} without autograd)")
    print(f"  UNet forward + backward    {ms(unet_fb)}")
    print(f"  text encoder backward      {ms(te_bwd)}")
    print(f"  whole optimiser step       {ms(step)}   ({args.batch_size / step:.1f} images/s)")
    rest = step - te_fwd_grad - unet_fb - te_bwd
    print(f"  rest (noise, loss, AdamW)  {ms(max(rest, 0.0))}")
    model.merge()


if __name__ == "__main__":
    main()
