"""What the Problem 2 benches share: the two DDIM loops they compare and a random face UNet.

``bench/bench_face_ddim.py`` and ``bench/gpu_check.py`` (its ``pb2`` part) time the core's DDIM loop
(:func:`core_loop`, what ``hw2_2.sh`` runs) against a step-by-step diffusers ``DDIMScheduler`` loop
(:func:`diffusers_loop`) on the same ``eps_fn`` and noises.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dlcv.diffusion import NoiseSchedule, ddim_sample, ddim_timesteps
from dlcv.diffusion.reference import course_ddim_scheduler
from dlcv.diffusion.samplers import EpsFn
from dlcv.faces.ddim import NUM_STEPS
from dlcv.faces.unet import FaceUNet


def diffusers_loop(eps_fn: EpsFn, x: torch.Tensor) -> torch.Tensor:
    """The usual diffusers loop: ``step(eps_fn(x, t), t, x).prev_sample`` for each timestep."""
    scheduler = course_ddim_scheduler(NUM_STEPS)
    for t in scheduler.timesteps:
        eps = eps_fn(x, t.to(x.device).expand(x.shape[0]))
        x = scheduler.step(eps, t, x).prev_sample
    return x


def core_loop(eps_fn: EpsFn, x: torch.Tensor) -> torch.Tensor:
    """What hw2_2 runs: the core's DDIM, 981..1, x0 clamped, the last step to alpha_bar[0]."""
    return ddim_sample(eps_fn, x, NoiseSchedule.linear(), ddim_timesteps(NUM_STEPS), clip_x0=True)


def random_unet(width: int, path: Path) -> None:
    """A face UNet of ``width`` with random weights, saved at ``path`` in the course's state-dict
    format. The output convolution is scaled by 0.005, as in DDPM's own initialisation, so that the
    DDIM trajectory is not chaotic and two loops' difference measures the samplers, not float noise
    amplified over 50 steps (timings do not depend on the weights)."""
    torch.manual_seed(0)
    model = FaceUNet(width)
    with torch.no_grad():
        model.out[2].weight.mul_(0.005)
        model.out[2].bias.mul_(0.005)
    torch.save(model.state_dict(), path)
