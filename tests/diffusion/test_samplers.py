"""The samplers, step by step, against diffusers' schedulers as oracles."""

import pytest
import torch
from diffusers import DDPMScheduler

from dlcv.diffusion.reference import course_ddim_scheduler
from dlcv.diffusion.samplers import (
    Capture,
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
    ddpm_step,
    dpmpp_2m_sample,
)
from dlcv.diffusion.schedule import NoiseSchedule

SCHEDULE = NoiseSchedule.linear()


def toy_eps(x, t):
    """A deterministic stand-in for a network: depends on x and t."""
    return torch.tanh(x * 0.7 + t.float().view(-1, 1, 1, 1) / 1000.0)


def test_ddim_timesteps_follow_the_course_convention():
    steps = ddim_timesteps(50)
    assert steps[0] == 981 and steps[-1] == 1 and len(steps) == 50
    assert all(a - b == 20 for a, b in zip(steps, steps[1:]))
    ref = course_ddim_scheduler(None)
    ref.set_timesteps(50)
    assert steps == ref.timesteps.tolist()
    with pytest.raises(ValueError):
        ddim_timesteps(1000, offset=1)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_steps_equal_diffusers(eta):
    ref = course_ddim_scheduler(None)
    ref.set_timesteps(50)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g)
    x_ref = x.clone()
    alpha_bar = SCHEDULE.alpha_bar
    steps = ddim_timesteps(50)
    for i, t in enumerate(steps):
        noise = torch.randn(x.shape, generator=g)
        eps = toy_eps(x, torch.full((2,), t))
        prev = float(alpha_bar[steps[i + 1]]) if i + 1 < len(steps) else float(alpha_bar[0])
        x, _ = ddim_step(x, eps, float(alpha_bar[t]), prev, eta=eta, noise=noise, clip_x0=True)
        out = ref.step(toy_eps(x_ref, torch.full((2,), t)), t, x_ref, eta=eta, variance_noise=noise)
        x_ref = out.prev_sample
        torch.testing.assert_close(x, x_ref, rtol=1e-5, atol=1e-5)


def test_ddim_sample_equals_the_diffusers_loop():
    ref = course_ddim_scheduler(None)
    ref.set_timesteps(50)
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    x_ref = x.clone()
    for t in ref.timesteps:
        x_ref = ref.step(toy_eps(x_ref, t.expand(3)), t, x_ref).prev_sample
    ours = ddim_sample(toy_eps, x, SCHEDULE, ddim_timesteps(50), clip_x0=True)
    torch.testing.assert_close(ours, x_ref, rtol=1e-5, atol=1e-5)


def test_ddim_final_alpha_one_ends_at_predicted_x0():
    x = torch.randn(1, 3, 4, 4)
    out = ddim_sample(toy_eps, x, SCHEDULE, [500], alpha_bar_final=1.0)
    alpha_bar_t = float(SCHEDULE.alpha_bar[500])
    x0 = (x - (1 - alpha_bar_t) ** 0.5 * toy_eps(x, torch.tensor([500]))) / alpha_bar_t**0.5
    torch.testing.assert_close(out, x0)


def test_ddim_rejects_unordered_timesteps():
    with pytest.raises(ValueError):
        ddim_sample(toy_eps, torch.zeros(1, 1, 2, 2), SCHEDULE, [1, 21])


def test_ddpm_steps_equal_diffusers():
    # diffusers keeps its schedule in float32 (cumprod error ~1e-5 near t=999), ours in float64
    ref = DDPMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=2e-2, clip_sample=True)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    for t in [999, 998, 500, 37, 1, 0]:
        eps = toy_eps(x, torch.full((2,), t))
        # diffusers draws its noise from the generator it is given: draw the same here
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(100 + t))
        prev = float(SCHEDULE.alpha_bar[t - 1]) if t > 0 else 1.0
        ours, _ = ddpm_step(
            x, eps, float(SCHEDULE.alpha_bar[t]), prev, noise=noise if t > 0 else None, clip_x0=True
        )
        theirs = ref.step(eps, t, x, generator=torch.Generator().manual_seed(100 + t)).prev_sample
        torch.testing.assert_close(ours, theirs, rtol=2e-4, atol=2e-4)
        x = ours


def test_ddpm_sample_is_seeded_and_captures_states():
    small = NoiseSchedule.linear(num_train_timesteps=20, beta_end=0.2)
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    cap = Capture([19, 10, 0], index=[0])
    a = ddpm_sample(toy_eps, x, small, generator=torch.Generator().manual_seed(5), callback=cap)
    b = ddpm_sample(toy_eps, x, small, generator=torch.Generator().manual_seed(5))
    c = ddpm_sample(toy_eps, x, small, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert [t for t, _ in cap.ordered()] == [19, 10, 0, -1]
    assert torch.equal(cap.states[19], x[[0]]) and torch.equal(cap.states[-1], a[[0]])


def _diffusers_dpm_solver(algorithm_type: str, steps: int):
    """diffusers' DPMSolverMultistepScheduler set up as our DPM-Solver++(2M): SD v1's linear
    schedule and "leading" timesteps, a first-order last step ending at x_0 (sigma = 0)."""
    from diffusers import DPMSolverMultistepScheduler

    ref = DPMSolverMultistepScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=2e-2,
        beta_schedule="linear",
        algorithm_type=algorithm_type,
        solver_order=2,
        lower_order_final=True,
        euler_at_final=False,
        final_sigmas_type="zero",
        timestep_spacing="leading",
        steps_offset=1,
    )
    ref.set_timesteps(steps)
    return ref


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 copy keyword, inside diffusers
@pytest.mark.parametrize("steps", [8, 20])
def test_dpmpp_2m_equals_diffusers_dpm_solver_multistep(steps):
    """Our DPM-Solver++(2M) against diffusers' DPMSolverMultistepScheduler on the same
    timesteps, ending at x_0 (sigma = 0) with a first-order last step."""
    ref = _diffusers_dpm_solver("dpmsolver++", steps)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    x_ref = x.clone()
    for t in ref.timesteps:
        x_ref = ref.step(toy_eps(x_ref, t.expand(2)), t, x_ref).prev_sample
    ours = dpmpp_2m_sample(toy_eps, x, SCHEDULE, ref.timesteps.tolist(), alpha_bar_final=1.0)
    torch.testing.assert_close(ours, x_ref, rtol=1e-4, atol=1e-4)


def test_dpmpp_2m_first_step_is_ddim():
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    one = dpmpp_2m_sample(toy_eps, x, SCHEDULE, [801])
    ref = ddim_sample(toy_eps, x, SCHEDULE, [801])
    torch.testing.assert_close(one, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 copy keyword, inside diffusers
@pytest.mark.parametrize("steps", [8, 25])
def test_dpmpp_2m_sde_equals_diffusers_sde_dpm_solver(steps):
    """eta = 1 is SDE-DPM-Solver++(2M): diffusers' ``algorithm_type="sde-dpmsolver++"``
    given the same fresh noise at each step."""
    ref = _diffusers_dpm_solver("sde-dpmsolver++", steps)
    timesteps = ref.timesteps.tolist()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    x_ref, g = x.clone(), torch.Generator().manual_seed(9)
    for t in ref.timesteps:
        noise = torch.randn(x.shape, generator=g)
        x_ref = ref.step(toy_eps(x_ref, t.expand(2)), t, x_ref, variance_noise=noise).prev_sample
    ours = dpmpp_2m_sample(
        toy_eps,
        x,
        SCHEDULE,
        timesteps,
        eta=1.0,
        alpha_bar_final=1.0,
        generator=torch.Generator().manual_seed(9),
    )
    torch.testing.assert_close(ours, x_ref, rtol=1e-4, atol=1e-4)
    ode = dpmpp_2m_sample(toy_eps, x, SCHEDULE, timesteps, alpha_bar_final=1.0)
    assert (ours - ode).abs().max() > 1e-2  # the noise matters


def test_dpmpp_2m_sde_first_step_is_ddpm_posterior():
    """One SDE step (first order) is DDIM with eta = 1, i.e. DDPM's posterior, given the same noise."""
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    end = float(SCHEDULE.alpha_bar[601])
    step_one = dpmpp_2m_sample(
        toy_eps, x, SCHEDULE, [801], eta=1.0, alpha_bar_final=end, generator=torch.Generator().manual_seed(4)
    )
    ddim_one = ddim_sample(
        toy_eps, x, SCHEDULE, [801], eta=1.0, alpha_bar_final=end, generator=torch.Generator().manual_seed(4)
    )
    torch.testing.assert_close(step_one, ddim_one, rtol=1e-5, atol=1e-5)
