import pytest
import torch

from dlcv.diffusion import NoiseSchedule
from dlcv.digits.model import build_model, load_config
from dlcv.digits.sampling import (
    course_labels,
    guided_eps_fn,
    sample_labels,
    write_course_outputs,
)


def test_course_labels_are_dataset_then_digit_blocks():
    labels = course_labels(3)
    assert labels.tolist()[:7] == [0, 0, 0, 1, 1, 1, 2]
    assert labels.tolist()[30:33] == [10, 10, 10] and labels[-1] == 19 and len(labels) == 60


def test_course_file_names(tmp_path):
    images = torch.zeros(40, 3, 28, 28, dtype=torch.uint8)
    images[2 * 13 + 1] = 255  # svhn digit 3, second image
    paths = write_course_outputs(images, tmp_path, n_per_digit=2)
    assert paths[0] == tmp_path / "mnistm" / "0_001.png"
    assert paths[27] == tmp_path / "svhn" / "3_002.png"
    assert len({p.name for p in paths}) == 20


def test_guidance_one_equals_the_conditional_model_and_sampling_is_seeded():
    torch.manual_seed(0)
    model = build_model(load_config("tiny")).eval()
    labels = torch.tensor([3, 15])
    x, t = torch.randn(2, 3, 28, 28), torch.tensor([500, 500])
    with torch.no_grad():
        assert torch.allclose(guided_eps_fn(model, labels, 1.0)(x, t), model(x, t, labels), atol=1e-6)
        guided = guided_eps_fn(model, labels, 3.0)(x, t)
        uncond = model(x, t, torch.full_like(labels, model.null_class))
        assert torch.allclose(guided, uncond + 3.0 * (model(x, t, labels) - uncond), atol=1e-5)
    schedule = NoiseSchedule.linear()
    a = sample_labels(model, schedule, labels, steps=3, seed=1, progress=False)
    b = sample_labels(model, schedule, labels, steps=3, seed=1, progress=False)
    assert a.dtype == torch.uint8 and a.shape == (2, 3, 28, 28) and torch.equal(a, b)


def test_a_v_prediction_model_is_sampled_through_its_noise_prediction():
    """NoisePredictor converts a v-prediction network's output to eps (eps = sqrt(a) v +
    sqrt(1 - a) x_t) before guidance and the sampler see it."""
    from dlcv.digits.model import noise_predictor

    cfg = load_config("tiny", ["diffusion.prediction=v"])
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    model = noise_predictor(net, cfg)
    schedule = NoiseSchedule.linear()
    x, t, y = torch.randn(2, 3, 28, 28), torch.tensor([100, 700]), torch.tensor([1, 12])
    a = schedule.alpha_bar[t].float().view(-1, 1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, y), a.sqrt() * net(x, t, y) + (1 - a).sqrt() * x)
    assert model.null_class == net.null_class and list(model.parameters())[0] is list(net.parameters())[0]


def test_every_sampler_runs_and_shows_one_progress_bar(capsys):
    torch.manual_seed(0)
    model = build_model(load_config("tiny")).eval()
    labels = torch.tensor([3, 15, 4, 0, 1, 2, 5, 6, 7, 8])
    schedule = NoiseSchedule.linear(num_train_timesteps=20)
    for sampler in ("ddim", "dpm++", "ddpm"):
        out = sample_labels(model, schedule, labels, sampler=sampler, steps=4, batch_size=8, progress=True)
        assert out.shape == (10, 3, 28, 28) and out.dtype == torch.uint8
    err = capsys.readouterr().err
    assert "DDIM x10" in err and "8/8" in err  # 2 batches x 4 steps
    assert "DPM++ x10" in err and "DDPM x10" in err and "40/40" in err  # 2 batches x 20 steps


@pytest.mark.parametrize("sampler, eta", [("ddim", 0.0), ("ddim", 1.0), ("dpm++", 0.0), ("ddpm", 0.0)])
def test_an_image_depends_on_its_seed_and_index_not_on_the_batch_size(sampler, eta):
    """Bit for bit: small batches take other CPU kernels (padded away) and fresh noise is per image."""
    torch.manual_seed(0)
    model = build_model(load_config("tiny")).eval().to(memory_format=torch.channels_last)
    schedule = NoiseSchedule.linear(20, 1e-3, 0.2) if sampler == "ddpm" else NoiseSchedule.linear()
    labels = torch.arange(20)

    def run(batch_size):
        return sample_labels(
            model,
            schedule,
            labels,
            sampler=sampler,
            steps=4,
            eta=eta,
            seed=3,
            batch_size=batch_size,
            progress=False,
        )

    whole = run(20)
    for batch_size in (1, 3, 7):
        assert torch.equal(run(batch_size), whole), batch_size
    other_seed = sample_labels(
        model, schedule, labels, sampler=sampler, steps=4, eta=eta, seed=4, batch_size=20, progress=False
    )
    assert (other_seed.float() - whole.float()).abs().mean() > 5


def test_sample_settings_take_the_models_values_unless_given_and_validate_once():
    from dlcv.cli import UserError
    from dlcv.digits.sampling import SampleSettings

    model_cfg = {"sample": {"sampler": "dpm++", "steps": 50, "guidance": [3, 6], "eta": 1.0}}
    s = SampleSettings.resolve(model_cfg, steps=None, guidance=None)
    assert (s.sampler, s.steps, s.guidance, s.eta) == ("dpm++", 50, (3.0, 6.0), 1.0)
    s = SampleSettings.resolve(model_cfg, guidance=4.0, steps=25)
    assert s.guidance == 4.0 and s.steps == 25 and s.eta == 1.0
    assert SampleSettings.resolve(None) == SampleSettings()
    assert "guidance 3/6" in SampleSettings.resolve(model_cfg).describe()
    for bad in (
        {"steps": 0},
        {"eta": -1.0},
        {"guidance": float("nan")},
        {"sampler": "bogus"},
        {"guidance": (1.0, 2.0, 3.0)},
        {"guidance_interval": (500.0, 100.0)},
    ):
        with pytest.raises(UserError):
            SampleSettings.resolve(model_cfg, **bad)


def test_guidance_per_dataset_guides_each_dataset_by_its_own_scale():
    from dlcv.digits.sampling import guidance_scales

    torch.manual_seed(0)
    model = build_model(load_config("tiny")).eval()
    labels = torch.tensor([3, 15])  # an MNIST-M three and an SVHN five
    assert guidance_scales([2.0, 5.0], labels).tolist() == [2.0, 5.0]
    x, t = torch.randn(2, 3, 28, 28), torch.tensor([500, 500])
    with torch.no_grad():
        both = guided_eps_fn(model, labels, [2.0, 5.0])(x, t)
        assert torch.allclose(both[0], guided_eps_fn(model, labels, 2.0)(x, t)[0], atol=1e-5)
        assert torch.allclose(both[1], guided_eps_fn(model, labels, 5.0)(x, t)[1], atol=1e-5)
