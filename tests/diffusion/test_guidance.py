import torch

from dlcv.diffusion.guidance import classifier_free_guidance


class CountingModel:
    """eps depends on the class label so the guided combination can be checked."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, c):
        self.calls.append(x.shape[0])
        return x * 0.1 + c.float().view(-1, 1, 1, 1)


def test_guided_eps_is_uncond_plus_scale_times_difference_in_one_pass():
    m = CountingModel()
    x, t = torch.randn(3, 1, 2, 2), torch.tensor([5, 5, 5])
    cond, null = torch.tensor([1, 2, 3]), torch.tensor([20, 20, 20])
    eps = classifier_free_guidance(m, cond, null, scale=3.0)(x, t)
    e_u, e_c = m(x, t, null), m(x, t, cond)
    torch.testing.assert_close(eps, e_u + 3.0 * (e_c - e_u))
    assert m.calls[0] == 6  # one doubled batch, not two passes


def test_scale_one_and_zero_skip_the_doubled_batch():
    m = CountingModel()
    x, t = torch.randn(2, 1, 2, 2), torch.tensor([1, 1])
    cond, null = torch.tensor([4, 5]), torch.tensor([20])  # batch-1 uncond broadcasts
    torch.testing.assert_close(classifier_free_guidance(m, cond, null, 1.0)(x, t), m(x, t, cond))
    torch.testing.assert_close(classifier_free_guidance(m, cond, null, 0.0)(x, t), m(x, t, null.expand(2)))
    assert m.calls[0] == 2


def test_a_scale_per_sample_guides_each_sample_by_its_own_scale():
    m = CountingModel()
    x, t = torch.randn(3, 1, 2, 2), torch.tensor([5, 5, 5])
    cond, null = torch.tensor([1, 2, 3]), torch.tensor([20, 20, 20])
    scale = torch.tensor([1.0, 3.0, 6.0])
    eps = classifier_free_guidance(m, cond, null, scale)(x, t)
    e_u, e_c = m(x, t, null), m(x, t, cond)
    for i, w in enumerate(scale.tolist()):
        torch.testing.assert_close(eps[i], e_u[i] + w * (e_c[i] - e_u[i]))


def test_guidance_in_an_interval_is_the_conditional_model_outside_it():
    m = CountingModel()
    x, cond, null = torch.randn(2, 1, 2, 2), torch.tensor([4, 5]), torch.tensor([20, 20])
    eps_fn = classifier_free_guidance(m, cond, null, 4.0, interval=(100, 600))
    for step in (50, 700):  # outside: one plain pass of the conditional model
        t = torch.tensor([step, step])
        torch.testing.assert_close(eps_fn(x, t), m(x, t, cond))
    t = torch.tensor([300, 300])
    e_u, e_c = m(x, t, null), m(x, t, cond)
    torch.testing.assert_close(eps_fn(x, t), e_u + 4.0 * (e_c - e_u))
    assert m.calls[:4] == [2, 2, 2, 2]  # the two outside calls and the two references: no doubled batch
    eps_fn(x, t)
    assert m.calls[-1] == 4
