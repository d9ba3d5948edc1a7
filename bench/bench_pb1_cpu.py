"""Problem 1 on the CPU: what each throughput switch buys, for the UNet and the latent model.

    python bench/bench_pb1_cpu.py [--compile]

Times training steps (the loss, backward pass and AdamW step of PB1/train.py on random
digits; the best of three timings) for the first CPU recipe's UNet (bench/configs/
pb1_unet_cpu.yaml) and the demo preset's latent model, with 1 or 2 threads, channels_last
on or off, bf16 autocast on or off (only where the CPU has bf16 instructions), and with
``--compile`` also ``torch.compile`` (its compile time printed separately); then the guided
sampling of 1,000 course images with the UNet, channels_last on and off. Ratios are against
the first row of each table, measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import torch

from dlcv.diffusion import ddim_sample, ddim_timesteps, diffusion_loss
from dlcv.digits.model import (
    build_model,
    build_objective,
    build_schedule,
    load_config,
    noise_predictor,
)
from dlcv.digits.sampling import course_labels, guided_eps_fn
from dlcv_bench.pb1 import REFERENCE_CONFIG


def has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def train_speed(
    config: str, threads: int, channels_last: bool, bf16: bool, compile_model: bool, steps: int = 20
) -> tuple[float, float]:
    """(steps/s, seconds of compilation) of one configuration."""
    torch.set_num_threads(threads)
    cfg = load_config(config)
    model = build_model(cfg)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    schedule, objective = build_schedule(cfg), build_objective(cfg)
    net = torch.compile(model) if compile_model else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    batch = int(cfg.train.batch_size)
    x0 = torch.rand(batch, 3, 28, 28, generator=g) * 2 - 1
    if channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 20, (batch,), generator=g)
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step() -> None:
        with amp:
            loss = diffusion_loss(lambda x, t: net(x, t, y), model.encode(x0), schedule, g, objective)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    began = time.perf_counter()
    step()
    first = time.perf_counter() - began
    for _ in range(3):
        step()
    best = 0.0
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(steps):
            step()
        best = max(best, steps / (time.perf_counter() - began))
    return best, (first - 1 / best) if compile_model else 0.0


def sampling_seconds(channels_last: bool, threads: int = 2, steps: int = 25) -> float:
    """Seconds for the 1,000 course images with the UNet (guided DDIM, batch 500)."""
    torch.set_num_threads(threads)
    cfg = load_config(REFERENCE_CONFIG)
    model = build_model(cfg).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    predictor, schedule = noise_predictor(model, cfg), build_schedule(cfg)
    labels = course_labels(50)
    began = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(labels), 500):
            x = torch.randn(500, 3, 28, 28)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            eps_fn = guided_eps_fn(predictor, labels[start : start + 500], 3.0)
            ddim_sample(eps_fn, x, schedule, ddim_timesteps(steps), clip_x0=True)
    return time.perf_counter() - began


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--compile", action="store_true", help="also time torch.compile (about a minute each)")
    args = p.parse_args()
    bf16 = has_bf16()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads available, "
        f"CPU bf16 instructions: {'yes' if bf16 else 'no'}"
    )
    for name, config in (
        ("UNet (first CPU recipe, batch 32)", REFERENCE_CONFIG),
        ("latent MLP (demo preset, batch 256)", "demo"),
    ):
        rows = [
            ("2 threads, channels_last", 2, True, False, False),
            ("1 thread, channels_last", 1, True, False, False),
            ("2 threads, contiguous (NCHW)", 2, False, False, False),
        ]
        if bf16:
            rows.append(("2 threads, channels_last, bf16 autocast", 2, True, True, False))
        if args.compile:
            rows.append(("2 threads, channels_last, torch.compile", 2, True, False, True))
        print(f"\ntraining, {name}: steps/s (ratio to the first row)")
        first = None
        for label, threads, cl, amp, comp in rows:
            speed, compile_s = train_speed(config, threads, cl, amp, comp)
            first = first or speed
            extra = f", {compile_s:.0f}s to compile" if comp else ""
            print(f"  {label:45s} {speed:6.2f}  ({speed / first:.2f}x{extra})", flush=True)
    print("\nsampling 1,000 images with the UNet (guided DDIM 25, 2 threads): seconds")
    with_cl, without = sampling_seconds(True), sampling_seconds(False)
    print(
        f"  channels_last {with_cl:6.1f}s, contiguous {without:6.1f}s: channels_last is "
        f"{without / with_cl:.2f}x faster"
    )


if __name__ == "__main__":
    main()
