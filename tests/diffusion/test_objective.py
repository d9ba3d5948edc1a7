import pytest
import torch

from dlcv.diffusion.objective import Objective, diffusion_loss, eps_model, sample_timesteps
from dlcv.diffusion.schedule import NoiseSchedule

KINDS = [Objective("epsilon"), Objective("v"), Objective("edm", sigma_data=0.5)]


def _oracle(objective: Objective, s: NoiseSchedule, x0: torch.Tensor):
    """A network that knows x0: outputs the exact target of the objective for its input."""

    def net(inp, t):
        a = s.alpha_bar[t].float().view(-1, 1, 1, 1)
        x_t = inp / objective.input_scale(a)
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return objective.target(x0, eps, a)

    return net


@pytest.mark.parametrize("objective", KINDS, ids=lambda o: o.prediction)
def test_an_oracle_has_zero_loss_and_eps_model_recovers_the_noise(objective):
    s = NoiseSchedule.linear()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 3, 4, 4, generator=g) * 2 - 1
    oracle = _oracle(objective, s, x0)
    assert diffusion_loss(oracle, x0, s, torch.Generator().manual_seed(1), objective) < 1e-8
    # eps_model turns the oracle's output back into the true noise at any timestep
    noise = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 5, 200, 500, 900, 999])
    x_t = s.add_noise(x0, noise, t)
    eps = eps_model(_oracle(objective, s, x0), s, objective)(x_t, t)
    torch.testing.assert_close(eps, noise, rtol=1e-3, atol=2e-3)


def test_targets_are_the_published_ones():
    a = torch.tensor([0.3]).view(1, 1, 1, 1)
    x0, eps = torch.full((1, 1, 1, 1), 0.8), torch.full((1, 1, 1, 1), -1.1)
    v = Objective("v").target(x0, eps, a)
    torch.testing.assert_close(v, a.sqrt() * eps - (1 - a).sqrt() * x0)  # Salimans & Ho 2022
    # EDM: D = c_skip x + c_out F must give back x0, with Karras et al.'s Table 1 coefficients
    sd, sigma = 0.5, ((1 - a) / a).sqrt()
    x = x0 + sigma * eps
    f = Objective("edm", sigma_data=sd).target(x0, eps, a)
    c_skip, c_out = sd**2 / (sigma**2 + sd**2), sigma * sd / (sigma**2 + sd**2).sqrt()
    torch.testing.assert_close(c_skip * x + c_out * f, x0)
    # its input is c_in x = x / sqrt(sigma^2 + sd^2)
    x_t = a.sqrt() * x
    torch.testing.assert_close(Objective("edm").input_scale(a) * x_t, x / (sigma**2 + sd**2).sqrt())


def test_eps_loss_is_ddpm_eq14_and_repeatable():
    s = NoiseSchedule.linear()
    x0 = torch.randn(8, 3, 4, 4)
    zero = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731
    a = diffusion_loss(zero, x0, s, torch.Generator().manual_seed(3))
    b = diffusion_loss(zero, x0, s, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the loss draws t, then the noise
    torch.randint(0, 1000, (8,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    assert a.item() == b.item()
    torch.testing.assert_close(a, noise.pow(2).mean())


@pytest.mark.parametrize("objective", KINDS, ids=lambda o: o.prediction)
def test_min_snr_weights_every_sample_by_min_snr_gamma_in_x0_space(objective):
    s = NoiseSchedule.linear()
    x0 = torch.rand(64, 3, 4, 4, generator=torch.Generator().manual_seed(4)) * 2 - 1
    weighted = Objective(objective.prediction, min_snr_gamma=5.0)

    # a network whose x0 error is exactly 0.1 everywhere: F error = 0.1 * dF/dx0
    def off_by(net_objective):
        def net(inp, t):
            a = s.alpha_bar[t].float().view(-1, 1, 1, 1)
            x_t = inp / net_objective.input_scale(a)
            eps_true = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
            eps_wrong = (x_t - a.sqrt() * (x0 + 0.1)) / (1 - a).sqrt()
            return net_objective.target(x0 + 0.1, eps_wrong, a) + 0 * eps_true

        return net

    loss = diffusion_loss(off_by(weighted), x0, s, torch.Generator().manual_seed(5), weighted)
    g = torch.Generator().manual_seed(5)
    t = torch.randint(0, 1000, (64,), generator=g)
    snr = s.alpha_bar[t] / (1 - s.alpha_bar[t])
    expected = (snr.clamp(max=5.0) * 0.01).mean().float()  # x0-space: min(SNR, 5) * 0.1^2
    torch.testing.assert_close(loss, expected, rtol=1e-3, atol=1e-6)


def test_lognormal_timesteps_follow_edm_noise_distribution():
    s = NoiseSchedule.linear()
    obj = Objective(timestep_sampling="lognormal", lognormal_mean=-1.2, lognormal_std=1.2)
    t = sample_timesteps(s, 20000, obj, torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and t.min() >= 0 and t.max() <= 999
    alpha_bar_t = s.alpha_bar[t]
    log_sigma = 0.5 * torch.log((1 - alpha_bar_t) / alpha_bar_t)
    # the median of ln(sigma) is P_mean; much of the mass is at low noise levels
    assert abs(log_sigma.median().item() - (-1.2)) < 0.05
    uniform = sample_timesteps(s, 20000, Objective(), torch.Generator().manual_seed(0))
    assert t.float().mean() < uniform.float().mean() - 150


def test_bad_objectives_are_refused():
    with pytest.raises(ValueError, match="prediction"):
        Objective("x0")
    with pytest.raises(ValueError, match="min_snr_gamma"):
        Objective(min_snr_gamma=float("nan"))
    with pytest.raises(ValueError, match="timestep_sampling"):
        Objective(timestep_sampling="cosine")
