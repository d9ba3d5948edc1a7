"""The one batched sampling driver: the course's DDIM by default, batching, seeds, factories."""

from __future__ import annotations

import torch

from dlcv.diffusion import NoiseSchedule, ddim_sample, ddim_timesteps
from dlcv.diffusion.driver import constant_eps, sample_batches

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
    parts = sample_batches(constant_eps(toy_eps), x, LINEAR, eta=1.0, steps=4, seed=2, batch_size=2,
                           batch_multiple=4)  # fmt: skip
    assert parts.shape == whole.shape
    torch.testing.assert_close(parts, whole)
