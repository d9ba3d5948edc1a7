"""Problem 1 speed: training throughput, and the 1,000 images with DDPM-1000 versus DDIM-50.

    python bench/bench_pb1.py                      # the demo model on the CPU, default model on CUDA
    python bench/bench_pb1.py --config default --full

Training throughput is measured on random uint8 batches through the same loss as
PB1/train.py (bf16 autocast and channels_last on CUDA). Generation times the
course set (20 classes x 50, guided: one doubled batch per step). Without
--full, DDPM-1000 on the CPU is timed over --ddpm-probe steps and extrapolated
(printed as such): its cost is linear in the number of steps.
"""

from __future__ import annotations

import argparse
import time

import torch
from omegaconf import OmegaConf

from dlcv.diffusion import ddim_sample, ddim_timesteps, ddpm_step, diffusion_loss
from dlcv.digits.model import build_model, build_objective, build_schedule, load_config, noise_predictor
from dlcv.digits.sampling import SampleSettings, course_labels, guided_eps_fn
from dlcv.runtime import autocast, configure_backends, pick_device


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="PB1 preset or YAML (default: demo on the CPU, default on CUDA)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, help="training batch (default: the config's)")
    p.add_argument("--train-steps", type=int, default=20, help="timed training steps (%(default)s)")
    p.add_argument("--ddim-steps", type=int, default=50)
    p.add_argument("--ddpm-probe", type=int, default=20, help="DDPM steps timed when not --full")
    p.add_argument("--full", action="store_true", help="run all 1000 DDPM steps")
    return p.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    args = parse_args()
    device = pick_device(args.device)
    configure_backends(device)
    cfg = load_config(args.config or ("default" if device.type == "cuda" else "demo"))
    model = build_model(cfg).to(device, memory_format=torch.channels_last)  # as PB1/train.py
    schedule, objective = build_schedule(cfg), build_objective(cfg)
    batch = args.batch_size or int(cfg.train.batch_size)
    name = args.config or ("default" if device.type == "cuda" else "demo")
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"config {name} ({params:.1f}M parameters), torch {torch.__version__}"
    )

    # ---- training throughput -----------------------------------------------------------------
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    g = torch.Generator().manual_seed(0)
    x_u8 = torch.randint(0, 256, (batch, 3, 28, 28), dtype=torch.uint8).to(device)
    x_u8 = x_u8.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 20, (batch,)).to(device)

    def train_step() -> None:
        x0 = x_u8.float() / 127.5 - 1
        with autocast(device):
            loss = diffusion_loss(lambda x, t: model(x, t, y), model.encode(x0), schedule, g, objective)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        train_step()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.train_steps):
        train_step()
    sync(device)
    elapsed = time.perf_counter() - start
    print(
        f"training: {args.train_steps * batch / elapsed:,.0f} images/s (batch {batch}, "
        f"{1000 * elapsed / args.train_steps:.0f} ms/step)"
    )

    # ---- generation of the course set ----------------------------------------------------------
    model.eval()
    labels = course_labels(50).to(device)
    guidance = SampleSettings.resolve(OmegaConf.to_container(cfg)).guidance
    predictor = noise_predictor(model, cfg)
    eps_fn = guided_eps_fn(predictor, labels, guidance)
    noise = torch.randn(len(labels), *model.latent_shape, generator=torch.Generator().manual_seed(0))
    noise = noise.to(device)
    if noise.ndim == 4:
        noise = noise.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        sync(device)
        start = time.perf_counter()
        ddim_sample(eps_fn, noise, schedule, ddim_timesteps(args.ddim_steps), clip_x0=model.clamp_x0)
        sync(device)
        ddim_time = time.perf_counter() - start
        steps = 1000 if args.full or device.type == "cuda" else args.ddpm_probe
        x = noise.clone()
        start = time.perf_counter()
        for t in range(999, 999 - steps, -1):  # the loop of ddpm_sample, cut short
            eps = eps_fn(x, torch.full((len(x),), t, device=device, dtype=torch.long))
            noise_t = torch.randn(x.shape, generator=g).to(device)
            alpha_bar_t = float(schedule.alpha_bar[t])
            alpha_bar_prev = float(schedule.alpha_bar[t - 1]) if t > 0 else 1.0
            x, _ = ddpm_step(x, eps, alpha_bar_t, alpha_bar_prev, noise=noise_t, clip_x0=model.clamp_x0)
        sync(device)
        ddpm_time = (time.perf_counter() - start) * 1000 / steps
    how = "measured" if steps == 1000 else f"extrapolated from {steps} steps"
    print(
        f"1,000 images, guidance {guidance}: DDIM-{args.ddim_steps} {ddim_time:.1f}s, "
        f"DDPM-1000 {ddpm_time:.1f}s ({how}); DDIM is {ddpm_time / ddim_time:.1f}x faster"
    )


if __name__ == "__main__":
    main()
