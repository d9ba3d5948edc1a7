"""Benchmark Problem 3 generation: our loop against diffusers' StableDiffusionPipeline, same model.

    python bench/bench_sd_generation.py                                   # tiny model, CPU-friendly
    python bench/bench_sd_generation.py --config v1 --resolution 512 --batch 5   # SD v1 size (GPU)
    python bench/bench_sd_generation.py --channels 64 128 128 --layers 2 --resolution 64

One random-weight model (timings do not depend on the weights) is sampled twice with
the same prompt, initial latents, guidance, steps and batch: by
:mod:`dlcv.stable_diffusion.generation` (text encoded once, the core's DDIM with both
guidance halves in one UNet forward, VAE decode) and by diffusers' pipeline with
``DDIMScheduler`` in SD v1's convention (leading spacing, offset 1, no clipping,
``set_alpha_to_one=False``) built from the same modules. Prints both times (best of
--repeat, alternating), the ratio (target: at most 1.0), the largest image difference and
the device. No asserts.
"""

from __future__ import annotations

import argparse
import time

import torch

from dlcv.cli import UserError, run
from dlcv.runtime import PRECISIONS, configure_backends, pick_device, resolve_dtype
from dlcv.stable_diffusion.config import load_config, sd_v1_config, tiny_config
from dlcv.stable_diffusion.generation import (
    SamplingOptions,
    decode_latents,
    denoise,
    encode_text,
    initial_latents,
    prepare_for_inference,
)
from dlcv.stable_diffusion.tiny import build_tiny_sd
from dlcv_bench.sd_reference import diffusers_pipeline

PROMPT = "The streets of Paris in the style of David Revoy."


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    _sync(out.device)
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="tiny", help="tiny (default), v1 (SD v1.4's size) or an SDConfig JSON")
    p.add_argument("--channels", type=int, nargs="+", help="tiny config: block widths (default 32 64)")
    p.add_argument("--layers", type=int, default=1, help="tiny config: layers per block (default 1)")
    p.add_argument("--resolution", type=int, help="image side (default: the config's, 32 tiny / 512 v1)")
    p.add_argument("--batch", type=int, default=4, help="images per prompt, one batch (default 4)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    p.add_argument("--guidance", type=float, default=7.5, help="guidance scale (default 7.5)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each, alternating (best is kept)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1, steady on a shared machine; 0 = torch's choice)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="weights' dtype, as PB3/inference.py (auto: bf16 from compute capability 8.0, "
        "fp16 below, fp32 on CPU)",
    )
    args = p.parse_args(argv)
    if args.batch < 1 or args.steps < 1 or args.repeat < 1:
        raise UserError("--batch, --steps and --repeat must be positive")
    if args.config == "tiny":
        config = tiny_config(tuple(args.channels or (32, 64)), layers_per_block=args.layers)
    elif args.config == "v1":
        config = sd_v1_config()
    else:
        config = load_config(args.config)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    configure_backends(device)
    dtype = resolve_dtype(args.precision, device)
    torch.set_grad_enabled(False)

    sd = prepare_for_inference(build_tiny_sd(seed=0, config=config).to(device, dtype), device)
    options = SamplingOptions(
        steps=args.steps,
        guidance=args.guidance,
        resolution=args.resolution,
        solver="ddim",
        decode_batch=args.batch,
    )
    res = options.check(sd)
    z = initial_latents(sd, args.batch, res, seed=0)

    def ours() -> torch.Tensor:
        cond, uncond = encode_text(sd, [PROMPT, ""]).chunk(2)
        return (decode_latents(sd, denoise(sd, z, cond, uncond, options)) / 2 + 0.5).clamp(0, 1)

    pipe = diffusers_pipeline(sd, "ddim")

    def theirs() -> torch.Tensor:
        return (
            pipe(
                [PROMPT] * args.batch,
                height=res,
                width=res,
                num_inference_steps=args.steps,
                guidance_scale=args.guidance,
                latents=z.to(device, dtype),
                output_type="pt",
            )
            .images.float()
            .cpu()
        )

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    params = sum(q.numel() for q in sd.unet.parameters()) / 1e6
    print(f"device: {name} ({device}, {torch.get_num_threads()} CPU threads), {str(dtype)[6:]}")
    print(
        f"model: {args.config}, UNet {params:.1f}M parameters; {args.batch} images of {res}x{res}, "
        f"DDIM {args.steps} steps, guidance {args.guidance}"
    )
    warm = SamplingOptions(steps=1, guidance=args.guidance, resolution=res, solver="ddim")
    cond, uncond = encode_text(sd, [PROMPT, ""]).chunk(2)
    decode_latents(sd, denoise(sd, z, cond, uncond, warm))  # warm-up (cuDNN autotuning, allocator)
    pipe(
        [PROMPT] * args.batch,
        height=res,
        width=res,
        num_inference_steps=1,
        guidance_scale=args.guidance,
        latents=z.to(device, dtype),
        output_type="pt",
    )
    times: dict[str, list[float]] = {"ours": [], "theirs": []}
    results = {}
    for i in range(args.repeat):  # alternate which one goes first
        for name, fn in (("ours", ours), ("theirs", theirs))[:: 1 if i % 2 == 0 else -1]:
            t, results[name] = timed(fn)
            times[name].append(t)
    a, b = results["ours"], results["theirs"]
    our_times, their_times = times["ours"], times["theirs"]
    print(
        "runs (s): ours "
        + " ".join(f"{t:.3f}" for t in our_times)
        + " | diffusers "
        + " ".join(f"{t:.3f}" for t in their_times)
    )
    mine, ref = min(our_times), min(their_times)
    rate = args.batch * args.steps / mine
    print(f"ours (dlcv generation):            {mine:8.3f} s  ({rate:.1f} image-steps/s)")
    print(f"diffusers StableDiffusionPipeline: {ref:8.3f} s")
    print(f"time ratio ours/diffusers: {mine / ref:.3f} (target <= 1.0)")
    print(f"max |ours - diffusers| on [0, 1] images: {float((a - b).abs().max()):.3e}")


if __name__ == "__main__":
    run(main)
