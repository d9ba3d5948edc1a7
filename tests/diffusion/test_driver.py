"""The one batched sampling driver: the course's DDIM by default, batching, seeds, factories."""

from __future__ import annotations

import pytest
import torch

from dlcv.diffusion import NoiseSchedule, ddim_sample, ddim_timesteps, dpm_solver_timesteps, dpmpp_2m_sample
from dlcv.diffusion.driver import COURSE, SD_V1, constant_eps, iter_sample_batches, sample_batches

LINEAR = NoiseSchedule.linear()


def toy_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A smooth, timestep-dependent stand-in for a network."""
    return 0.3 * torch.tanh(x) * (t.float() / 1000)[:, None, None, None]


def noises(n: int = 4, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_defaults_are_the_course_convention_and_batching_is_invisible():
    x = noises()
    expected = ddim_sample(toy_eps, x, LINEAR, ddim_timesteps(50), eta=0.0, clip_x0=True)
    ours = sample_batches(constant_eps(toy_eps), x, LINEAR)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(sample_batches(constant_eps(toy_eps), x, LINEAR, batch_size=3), expected)


def test_stochastic_noise_is_seeded():
    x = noises()
    a = sample_batches(constant_eps(toy_eps), x, LINEAR, eta=0.5, steps=5, seed=3)
    b = sample_batches(constant_eps(toy_eps), x, LINEAR, eta=0.5, steps=5, seed=3)
    c = sample_batches(constant_eps(toy_eps), x, LINEAR, eta=0.5, steps=5, seed=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_factories_see_which_items_they_denoise():
    seen = []

    def factory(index: torch.Tensor):
        seen.append(index.tolist())
        return toy_eps

    sample_batches(factory, noises(5), LINEAR, steps=2, batch_size=2)
    assert seen == [[0, 1], [2, 3], [4]]


def test_stochastic_items_do_not_depend_on_the_batch_and_padding_is_dropped():
    x = noises(5)
    whole = sample_batches(constant_eps(toy_eps), x, LINEAR, eta=1.0, steps=4, seed=2)
    parts = sample_batches(
        constant_eps(toy_eps), x, LINEAR, eta=1.0, steps=4, seed=2, batch_size=2, batch_multiple=4
    )
    assert parts.shape == whole.shape
    torch.testing.assert_close(parts, whole)


@pytest.mark.parametrize("convention", [COURSE, SD_V1])
def test_a_sampler_name_is_one_algorithm_and_the_convention_the_models(convention):
    """ "dpm++" is DPM-Solver++(2M) in both conventions; the convention says which timesteps it
    visits and where its last step ends (the course: DDIM's, to alpha_bar[0]; SD v1: diffusers'
    leading ones, to x_0). DDIM is the same in both."""
    x = noises()
    timesteps = ddim_timesteps(6) if convention is COURSE else dpm_solver_timesteps(6)
    final = None if convention is COURSE else 1.0
    expected = dpmpp_2m_sample(toy_eps, x, LINEAR, timesteps, clip_x0=False, alpha_bar_final=final)
    ours = sample_batches(
        constant_eps(toy_eps), x, LINEAR, sampler="dpm++", steps=6, clip_x0=False, convention=convention
    )
    torch.testing.assert_close(ours, expected)
    assert convention.timesteps("ddim", 6, 1000) == ddim_timesteps(6)
    assert convention.alpha_bar_final("ddim") is None


def test_batches_come_one_at_a_time_decoded():
    x = noises(5)
    decoded = list(
        iter_sample_batches(constant_eps(toy_eps), x, LINEAR, steps=3, batch_size=2, decode=lambda z: z * 2)
    )
    assert [start for start, _ in decoded] == [0, 2, 4]
    whole = sample_batches(constant_eps(toy_eps), x, LINEAR, steps=3)
    torch.testing.assert_close(torch.cat([b for _, b in decoded]), whole * 2)


@pytest.mark.parametrize("convention", [COURSE, SD_V1])
@pytest.mark.parametrize("sampler", ["ddim", "dpm++"])
def test_max_steps_is_the_most_a_convention_can_visit(convention, sampler):
    """``max_steps`` steps give timesteps inside the schedule, one more does not."""
    for timesteps in (10, 1000):
        most = convention.max_steps(sampler, timesteps)
        visited = convention.timesteps(sampler, most, timesteps)
        assert len(visited) == most and max(visited) <= timesteps - 1 and min(visited) >= 0
        with pytest.raises(ValueError):
            convention.timesteps(sampler, most + 1, timesteps)
    assert convention.max_steps("ddpm", 1000) == 1000
