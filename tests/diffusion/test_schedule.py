import torch
from diffusers import DDPMScheduler

from dlcv.diffusion.samplers import ddim_step
from dlcv.diffusion.schedule import NoiseSchedule


def test_linear_schedule_matches_course_values():
    s = NoiseSchedule.linear()
    assert s.betas.dtype == torch.float64 and s.num_train_timesteps == 1000
    assert s.betas[0].item() == 1e-4 and abs(s.betas[-1].item() - 2e-2) < 1e-15
    expected = torch.cumprod(1 - torch.linspace(1e-4, 2e-2, 1000, dtype=torch.float64), 0)
    assert torch.equal(s.alpha_bar, expected)


def test_scaled_linear_matches_diffusers():
    ours = NoiseSchedule.scaled_linear()
    ref = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    torch.testing.assert_close(ours.alpha_bar.float(), ref.alphas_cumprod, rtol=1e-5, atol=1e-7)


def test_add_noise_matches_diffusers_and_the_samplers_x0_inverts_it():
    s = NoiseSchedule.linear()
    ref = DDPMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=2e-2)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    x_t = s.add_noise(x0, noise, t)
    torch.testing.assert_close(x_t, ref.add_noise(x0, noise, t), rtol=1e-5, atol=1e-5)
    for i, step in enumerate(t.tolist()):  # a DDIM step to alpha_bar 1 returns the predicted x0
        _, x0_pred = ddim_step(x_t[i : i + 1], noise[i : i + 1], float(s.alpha_bar[step]), 1.0)
        torch.testing.assert_close(x0_pred, x0[i : i + 1], rtol=1e-4, atol=1e-4)
