import torch
from diffusers import DDPMScheduler

from dlcv.diffusion.schedule import NoiseSchedule, epsilon_loss


def test_linear_schedule_matches_course_values():
    s = NoiseSchedule.linear()
    assert s.betas.dtype == torch.float64 and s.num_train_timesteps == 1000
    assert s.betas[0].item() == 1e-4 and abs(s.betas[-1].item() - 2e-2) < 1e-15
    expected = torch.cumprod(1 - torch.linspace(1e-4, 2e-2, 1000, dtype=torch.float64), 0)
    assert torch.equal(s.alphas_cumprod, expected)


def test_scaled_linear_matches_diffusers():
    ours = NoiseSchedule.scaled_linear()
    ref = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    torch.testing.assert_close(ours.alphas_cumprod.float(), ref.alphas_cumprod, rtol=1e-5, atol=1e-7)


def test_add_noise_matches_diffusers_and_predict_x0_inverts_it():
    s = NoiseSchedule.linear()
    ref = DDPMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=2e-2)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    x_t = s.add_noise(x0, noise, t)
    torch.testing.assert_close(x_t, ref.add_noise(x0, noise, t), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(s.predict_x0(x_t, noise, t), x0, rtol=1e-4, atol=1e-4)


def test_epsilon_loss_is_zero_for_an_oracle_and_repeatable():
    s = NoiseSchedule.linear()
    x0 = torch.randn(8, 3, 4, 4)

    def oracle(x_t, t):  # recovers the true noise from x_t, knowing x0
        ab = s.alphas_cumprod[t].float().view(-1, 1, 1, 1)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    assert epsilon_loss(oracle, x0, s, torch.Generator().manual_seed(1)).item() < 1e-8
    zero = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731
    a = epsilon_loss(zero, x0, s, torch.Generator().manual_seed(3))
    b = epsilon_loss(zero, x0, s, torch.Generator().manual_seed(3))
    assert a.item() == b.item() and 0.5 < a.item() < 1.5


def test_min_snr_weighting_down_weights_only_the_low_noise_timesteps():
    s = NoiseSchedule.linear()
    x0 = torch.randn(64, 3, 4, 4)
    zero = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731  loss per sample = mean(noise^2)
    plain = epsilon_loss(zero, x0, s, torch.Generator().manual_seed(5))
    weighted = epsilon_loss(zero, x0, s, torch.Generator().manual_seed(5), min_snr_gamma=5.0)
    g = torch.Generator().manual_seed(5)  # redraw the same t and noise as the loss did
    t = torch.randint(0, 1000, (64,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    snr = s.alphas_cumprod[t] / (1 - s.alphas_cumprod[t])
    expected = ((snr.clamp(max=5.0) / snr).float() * noise.pow(2).flatten(1).mean(1)).mean()
    assert torch.allclose(weighted, expected, rtol=1e-5)
    assert weighted < plain
    huge = epsilon_loss(zero, x0, s, torch.Generator().manual_seed(5), min_snr_gamma=1e9)
    assert torch.allclose(huge, plain, rtol=1e-6)
