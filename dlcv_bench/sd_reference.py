"""diffusers' own Stable Diffusion pipeline on the networks we loaded: the reference that the benches
(and the tests) compare our sampling loop with. The schedulers carry SD v1's published scheduler settings
(its ``scheduler_config.json``: scaled-linear betas, "leading" spacing, ``steps_offset=1``, DDIM without
``set_alpha_to_one``), the betas taken from the model's own config."""

from __future__ import annotations

from typing import Any


def sd_v1_scheduler(solver: str, config: Any) -> Any:
    """diffusers' scheduler for our ``solver`` name ("ddim" or "dpm++") with SD v1's settings and the
    betas of ``config`` (a :class:`dlcv.stable_diffusion.config.SDConfig`)."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    common = {
        "num_train_timesteps": config.num_train_timesteps,
        "beta_start": config.beta_start,
        "beta_end": config.beta_end,
        "beta_schedule": "scaled_linear",
        "steps_offset": 1,
        "timestep_spacing": "leading",
    }
    if solver == "ddim":
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=False)
    if solver == "dpm++":
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2)
    raise ValueError(f"solver must be 'ddim' or 'dpm++', got {solver!r}")


def diffusers_pipeline(sd: Any, solver: str = "ddim") -> Any:
    """A ``StableDiffusionPipeline`` sharing ``sd``'s networks and tokenizer (no safety checker), with
    :func:`sd_v1_scheduler`'s scheduler for ``solver``, its progress bar off."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=sd.vae,
        text_encoder=sd.text_encoder,
        tokenizer=sd.tokenizer,
        unet=sd.unet,
        scheduler=sd_v1_scheduler(solver, sd.config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
