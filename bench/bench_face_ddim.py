"""Benchmark Problem 2: the core's DDIM loop against diffusers' DDIMScheduler, and hw2_2's wall time.

    python bench/bench_face_ddim.py                                  # full UNet, 10 x 256x256
    python bench/bench_face_ddim.py --unet hw2_data/face/UNet.pt     # the course's weights
    python bench/bench_face_ddim.py --width 16 --size 64 --device cpu  # a quick CPU run

1. Sampler overhead: the same UNet ``eps_fn`` and noises through the core's
   ``ddim_sample`` and through a step-by-step diffusers ``DDIMScheduler`` loop set
   to the course convention; prints both times (best of --repeat, alternating),
   their ratio (target: at most 1.0) and the largest difference of the outputs.
2. hw2_2 end to end: ``bash hw2_2.sh NOISE_DIR OUT_DIR UNET`` as a user runs it
   (Python start-up, loading, sampling, writing PNGs), wall time.
Without --unet, random weights of the chosen width are used (timings do not
depend on the weights).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from diffusers import DDIMScheduler

from dlcv.cli import UserError, run
from dlcv.diffusion import NoiseSchedule, ddim_sample, ddim_timesteps
from dlcv.face_ddim import (
    NUM_STEPS,
    PRECISIONS,
    face_eps_fn,
    load_face_unet,
    precision_context,
    resolve_precision,
)
from dlcv.models.face_unet import FaceUNet
from dlcv.runtime import pick_device

REPO = Path(__file__).resolve().parents[1]


def course_scheduler() -> DDIMScheduler:
    """diffusers' DDIM configured to the course's convention (the same as SD v1's)."""
    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=2e-2,
        beta_schedule="linear",
        clip_sample=True,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
    )
    scheduler.set_timesteps(NUM_STEPS)
    return scheduler


def diffusers_loop(eps_fn, x: torch.Tensor) -> torch.Tensor:
    scheduler = course_scheduler()
    for t in scheduler.timesteps:
        eps = eps_fn(x, t.to(x.device).expand(x.shape[0]))
        x = scheduler.step(eps, t, x).prev_sample
    return x


def core_loop(eps_fn, x: torch.Tensor) -> torch.Tensor:
    return ddim_sample(eps_fn, x, NoiseSchedule.linear(), ddim_timesteps(NUM_STEPS), clip_x0=True)


def timed(fn, *args) -> tuple[float, torch.Tensor]:
    device = args[-1].device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--unet", help="face UNet state dict (default: random weights of --width)")
    p.add_argument("--width", type=int, default=128, help="base channels without --unet")
    p.add_argument("--size", type=int, default=256, help="noise height and width (multiple of 32)")
    p.add_argument("--num", type=int, default=10, help="number of noises (one batch)")
    p.add_argument("--repeat", type=int, default=2, help="timed runs of each loop (best is kept)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="as hw2_2's --precision")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    p.add_argument("--skip-hw2-2", action="store_true", help="only the sampler comparison")
    args = p.parse_args(argv)
    if args.size % 32 or args.size < 32:
        raise UserError("--size must be a positive multiple of 32")
    device = pick_device(args.device)
    precision = resolve_precision(args.precision, device)
    torch.set_grad_enabled(False)

    with tempfile.TemporaryDirectory(prefix="bench_face_ddim_") as tmp:
        tmp = Path(tmp)
        unet_path = Path(args.unet) if args.unet else tmp / "unet.pt"
        if not args.unet:
            torch.manual_seed(0)
            torch.save(FaceUNet(args.width).state_dict(), unet_path)
        model = load_face_unet(unet_path, device)
        width = model.base_channels
        eps_fn = face_eps_fn(model, precision, channels_last=device.type == "cuda")
        noises = torch.randn(
            args.num, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)
        )
        x = noises.to(device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        threads = torch.get_num_threads()
        print(f"device: {name} ({device}, {threads} CPU threads), precision {precision}")
        print(
            f"UNet width {width}, {args.num} noises of {args.size}x{args.size}, {NUM_STEPS} steps"
        )

        with precision_context(precision, device):
            core_loop(eps_fn, x[:1])  # warm-up (cuDNN autotuning, allocator)
            core_times, diff_times = [], []
            for _ in range(args.repeat):
                t_core, ours = timed(core_loop, eps_fn, x)
                t_diff, ref = timed(diffusers_loop, eps_fn, x)
                core_times.append(t_core)
                diff_times.append(t_diff)
        core, diff = min(core_times), min(diff_times)
        max_diff = float((ours.float() - ref.float()).abs().max())
        print(f"core DDIM loop:      {core:8.3f} s")
        print(f"diffusers DDIM loop: {diff:8.3f} s")
        print(f"time ratio core/diffusers: {core / diff:.3f} (target <= 1.0)")
        print(f"max |core - diffusers|: {max_diff:.3e}")

        if args.skip_hw2_2:
            return
        noise_dir, out_dir = tmp / "noise", tmp / "out"
        noise_dir.mkdir()
        for i, noise in enumerate(noises):
            torch.save(noise[None].clone(), noise_dir / f"{i:02d}.pt")
        env = dict(os.environ, PYTHON=sys.executable)
        if device.type == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""  # hw2_2.sh picks its device itself
        command = ["bash", str(REPO / "hw2_2.sh"), str(noise_dir), str(out_dir), str(unet_path)]
        start = time.perf_counter()
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode:
            raise UserError(f"hw2_2.sh failed: {result.stderr.strip().splitlines()[-1]}")
        written = len(list(out_dir.glob("*.png")))
        print(f"hw2_2.sh wall time: {wall:.2f} s for {written} images (start-up and PNGs included)")


if __name__ == "__main__":
    run(main)
