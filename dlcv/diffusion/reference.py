"""diffusers' schedulers configured to the course's conventions: the oracle tests and benchmarks
compare the core samplers against (the core never uses them to sample)."""

from __future__ import annotations

from diffusers import DDIMScheduler


def course_ddim_scheduler(num_steps: int | None = 50) -> DDIMScheduler:
    """DDIM as the course (and SD v1) discretise it: linear betas 1e-4..2e-2 over 1000 steps,
    "leading" spacing plus offset 1 (981..1), last step to alpha_bar[0], x0 clamped to [-1, 1].
    ``num_steps=None`` leaves the timesteps unset."""
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
    if num_steps is not None:
        scheduler.set_timesteps(num_steps)
    return scheduler
