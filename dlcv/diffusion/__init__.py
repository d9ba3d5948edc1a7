"""The diffusion math, in one place: noise schedules, the training objective, samplers (and
the one batched driver that runs them over a job), guidance, interpolation.

This is the core: it imports nothing else of the project (``docs/architecture.md``).

Models are seen through one signature, ``eps_fn(x_t, t) -> eps``: a callable that
predicts the noise in ``x_t`` at integer timesteps ``t`` (a ``(B,)`` long tensor).
Class or text conditioning is bound into ``eps_fn`` by
:func:`dlcv.diffusion.guidance.classifier_free_guidance`.
"""

from dlcv.diffusion.driver import (
    COURSE,
    SD_V1,
    EpsFactory,
    TimestepConvention,
    constant_eps,
    iter_sample_batches,
    sample_batches,
    sampler_timesteps,
)
from dlcv.diffusion.guidance import classifier_free_guidance
from dlcv.diffusion.interpolation import lerp, slerp
from dlcv.diffusion.objective import Objective, diffusion_loss, eps_model
from dlcv.diffusion.samplers import (
    Capture,
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
    ddpm_step,
    dpm_solver_timesteps,
    dpmpp_2m_sample,
)
from dlcv.diffusion.schedule import NoiseSchedule

__all__ = [
    "COURSE",
    "SD_V1",
    "Capture",
    "EpsFactory",
    "NoiseSchedule",
    "Objective",
    "TimestepConvention",
    "classifier_free_guidance",
    "constant_eps",
    "ddim_sample",
    "ddim_step",
    "ddim_timesteps",
    "ddpm_sample",
    "ddpm_step",
    "diffusion_loss",
    "dpm_solver_timesteps",
    "dpmpp_2m_sample",
    "eps_model",
    "iter_sample_batches",
    "lerp",
    "sample_batches",
    "sampler_timesteps",
    "slerp",
]
