"""Benchmark Problem 2: the core's DDIM loop against diffusers' DDIMScheduler, and hw2_2's wall time.

    python bench/bench_face_ddim.py                                  # defaults for the device (below)
    python bench/bench_face_ddim.py --unet hw2_data/face/UNet.pt     # the course's weights
    python bench/bench_face_ddim.py --width 16 --size 64 --num 2     # a quick run anywhere

1. Sampler overhead: the same UNet ``eps_fn`` and noises through the core's
   ``ddim_sample`` and through a step-by-step diffusers ``DDIMScheduler`` loop set
   to the course convention; prints both times (best of --repeat, alternating),
   their ratio (target: at most 1.0, i.e. no overhead beyond the network) and
   the largest difference of the outputs.
2. hw2_2 end to end: ``bash hw2_2.sh NOISE_DIR OUT_DIR UNET`` as a user runs it
   (Python start-up, loading, sampling, writing PNGs), wall time.

Defaults: on CUDA the course's case, the full-width UNet (128) and ten 256x256
noises; on the CPU, where that takes hours, width 16 and two 32x32 noises
(seconds to a minute); the header says what ran. On a CPU shared with other
jobs, ``OMP_NUM_THREADS=1`` avoids OpenMP spin-waits that swamp the timings.
Without --unet the weights are random, with the output layer scaled down as in
DDPM's own initialisation so that the DDIM trajectory is not chaotic and the two
loops' difference measures the samplers, not float noise amplified over 50
steps (timings do not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from dlcv.cli import UserError, run
from dlcv.diffusion.samplers import EpsFn
from dlcv.faces.ddim import (
    NUM_STEPS,
    PRECISIONS,
    face_eps_fn,
    face_precision,
    load_face_unet,
    precision_context,
)
from dlcv.faces.unet import DOWN_FACTOR
from dlcv.runtime import pick_device
from dlcv_bench.faces import core_loop, diffusers_loop, random_unet

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = {  # width, size, num, repeat
    "cuda": (128, 256, 10, 3),
    "cpu": (16, 32, 2, 3),
}


def timed(fn, eps_fn: EpsFn, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    start = time.perf_counter()
    out = fn(eps_fn, x)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - start, out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unet", help="face UNet state dict (default: random weights of --width)")
    p.add_argument("--width", type=int, help="base channels without --unet (default: 128 CUDA / 16 CPU)")
    p.add_argument("--size", type=int, help="noise height and width, multiple of 32 (default: 256 / 32)")
    p.add_argument("--num", type=int, help="number of noises, one batch (default: 10 / 2)")
    p.add_argument("--repeat", type=int, help="timed runs of each loop, best kept (default: 3)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="as hw2_2's --precision")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, ...")
    p.add_argument("--skip-hw2-2", action="store_true", help="only the sampler comparison")
    p.add_argument("--json", help="also write the results to this JSON file")
    return p


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    device = pick_device(args.device)
    width, size, num, repeat = DEFAULTS["cuda" if device.type == "cuda" else "cpu"]
    width, size = args.width or width, args.size or size
    num, repeat = args.num or num, args.repeat or repeat
    if size % DOWN_FACTOR or size < DOWN_FACTOR:
        raise UserError(f"--size must be a positive multiple of {DOWN_FACTOR}")
    if width < 2 or width % 2 or num < 1 or repeat < 1:
        raise UserError("--width must be even and positive; --num and --repeat positive")
    precision = face_precision(args.precision, device)
    results: dict[str, object] = {}

    with tempfile.TemporaryDirectory(prefix="bench_face_ddim_") as tmp_name:
        tmp = Path(tmp_name)
        unet_path = Path(args.unet) if args.unet else tmp / "unet.pt"
        if not args.unet:
            random_unet(width, unet_path)
        model = load_face_unet(unet_path, device)
        eps_fn = face_eps_fn(model, device, precision, channels_last=device.type == "cuda")
        noises = torch.randn(num, 3, size, size, generator=torch.Generator().manual_seed(0))
        x = noises.to(device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        print(f"device: {name} ({device}, {torch.get_num_threads()} CPU threads), precision {precision}")
        weights = args.unet or "random weights"
        shape = f"{num} noises of {size}x{size}"
        print(f"UNet width {model.base_channels} ({weights}), {shape}, {NUM_STEPS} DDIM steps")
        results.update(device=name, precision=precision, width=model.base_channels, num=num, size=size)

        with precision_context(precision, device):
            eps_fn(x, torch.full((num,), 981, device=device))  # warm-up: cuDNN autotuning, allocator
            core_times, diff_times = [], []
            for _ in range(repeat):  # alternating, so drifting clocks hit both loops alike
                t_core, ours = timed(core_loop, eps_fn, x)
                t_diff, ref = timed(diffusers_loop, eps_fn, x)
                core_times.append(t_core)
                diff_times.append(t_diff)
        core, diff = min(core_times), min(diff_times)
        max_diff = float((ours.float() - ref.float()).abs().max())
        print(f"core DDIM loop:      {core:8.3f} s")
        print(f"diffusers DDIM loop: {diff:8.3f} s")
        print(f"time ratio core/diffusers: {core / diff:.3f} (target <= 1.0)")
        print(f"max |core - diffusers| of the outputs: {max_diff:.3e}")
        results.update(core_s=core, diffusers_s=diff, ratio=core / diff, max_abs_diff=max_diff)

        if not args.skip_hw2_2:
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
                lines = result.stderr.strip().splitlines() or ["(no message)"]
                raise UserError(f"hw2_2.sh failed: {lines[-1]}")
            written = len(list(out_dir.glob("*.png")))
            print(
                f"hw2_2.sh wall time: {wall:.2f} s for {written} images of {size}x{size} "
                "(start-up, loading and PNGs included)"
            )
            results.update(hw2_2_wall_s=wall, hw2_2_images=written)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    run(main)
