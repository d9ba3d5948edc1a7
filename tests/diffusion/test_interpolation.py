import torch

from dlcv.diffusion.interpolation import lerp, slerp


def test_endpoints_and_midpoints():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 3, 16, 16, generator=g), torch.randn(1, 3, 16, 16, generator=g)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    torch.testing.assert_close(lerp(a, b, 0.0), a)
    torch.testing.assert_close(lerp(a, b, 0.5), (a + b) / 2)


def test_slerp_keeps_the_norm_of_gaussian_noise_and_lerp_does_not():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(3, 64, 64, generator=g), torch.randn(3, 64, 64, generator=g)
    n = a.norm()
    assert abs(slerp(a, b, 0.5).norm() / n - 1) < 0.02
    assert lerp(a, b, 0.5).norm() / n < 0.75  # ~1/sqrt(2) for independent noises


def test_slerp_of_parallel_vectors_falls_back_to_lerp():
    a = torch.ones(4)
    torch.testing.assert_close(slerp(a, 2 * a, 0.5), 1.5 * a)
