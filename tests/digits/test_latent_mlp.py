import pytest
import torch

from dlcv.digits.latent_mlp import DigitLatentMLP, DigitLatentMLPConfig
from dlcv.digits.model import build_model, load_config


def test_the_pca_basis_spans_the_data_and_decode_inverts_encode():
    """Images made of a mean and 3 directions: 3 components keep all their variance and
    decode(encode(x)) gives them back; the basis is orthonormal."""
    g = torch.Generator().manual_seed(0)
    directions = torch.linalg.qr(torch.randn(3 * 28 * 28, 3, generator=g)).Q
    coefficients = torch.randn(200, 3, generator=g) * 400  # about 14 grey levels per pixel, none clipped
    x = (coefficients @ directions.T).clamp(-120, 120) + 127.5
    images = x.round().clamp(0, 255).to(torch.uint8).view(200, 3, 28, 28)
    model = DigitLatentMLP(DigitLatentMLPConfig(components=3, width=16, depth=1))
    kept = model.fit_basis(images, seed=0)
    assert kept > 0.999
    basis = model.pca_basis
    torch.testing.assert_close(basis.T @ basis, torch.eye(3), atol=1e-4, rtol=0)
    pixels = images.float() / 127.5 - 1
    z = model.encode(pixels)
    assert z.shape == (200, 3) and model.latent_shape == (3,)
    error = (model.decode(z) - pixels).abs()
    assert error.mean() < 0.005 and error.quantile(0.999) < 0.02  # rounding to uint8; a few clipped


def test_clamp_x0_projects_the_clamped_image_back():
    model = DigitLatentMLP(DigitLatentMLPConfig(components=5, width=16, depth=1))
    g = torch.Generator().manual_seed(2)
    model.fit_basis(torch.randint(0, 256, (50, 3, 28, 28), dtype=torch.uint8, generator=g))
    far = torch.randn(4, 5, generator=g) * 500  # decodes far outside [-1, 1]
    assert model.decode(far).abs().max() > 3
    clamped = model.clamp_x0(far)
    assert clamped.norm() < far.norm() / 5
    assert model.decode(clamped).abs().max() < model.decode(far).abs().max() / 2
    inside = model.encode(torch.rand(4, 3, 28, 28, generator=g) * 0.2 - 0.1)
    torch.testing.assert_close(model.clamp_x0(inside), inside, atol=1e-4, rtol=0)  # in range: unchanged


def test_fit_basis_is_seeded_and_subsamples():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (300, 3, 28, 28), dtype=torch.uint8, generator=g)
    a, b = (DigitLatentMLP(DigitLatentMLPConfig(components=8, width=16, depth=1)) for _ in range(2))
    a.fit_basis(images, max_images=100, seed=3)
    b.fit_basis(images, max_images=100, seed=3)
    assert torch.equal(a.pca_basis, b.pca_basis) and torch.equal(a.pca_mean, b.pca_mean)


def test_forward_depends_on_time_and_class_and_starts_at_zero():
    model = DigitLatentMLP(DigitLatentMLPConfig(components=12, width=32, depth=2))
    z = torch.randn(4, 12)
    assert torch.equal(model(z, torch.tensor([1, 2, 3, 4]), torch.tensor([0, 1, 2, 20])), torch.zeros(4, 12))
    torch.nn.init.normal_(model.out.weight)
    a = model(z, torch.tensor([5, 5, 5, 5]), torch.tensor([0, 0, 0, 0]))
    b = model(z, torch.tensor([5, 5, 5, 5]), torch.tensor([19, 19, 19, 19]))
    c = model(z, torch.tensor([900, 900, 900, 900]), torch.tensor([0, 0, 0, 0]))
    assert a.shape == (4, 12) and not torch.allclose(a, b) and not torch.allclose(a, c)


def test_config_is_checked(tmp_path):
    with pytest.raises(ValueError, match="components"):
        DigitLatentMLPConfig(components=0)
    with pytest.raises(ValueError, match="at most 2352"):
        DigitLatentMLPConfig(components=5000)
    path = tmp_path / "latent.yaml"
    path.write_text(LATENT_YAML.replace("width: 32", "width: 32\n  base_channels: 4"))
    from dlcv.cli import UserError

    with pytest.raises(UserError, match="base_channels"):
        load_config(str(path))


LATENT_YAML = """
model:
  type: pca_mlp
  components: 16
  width: 32
  depth: 2
diffusion:
  num_train_timesteps: 1000
  beta_start: 1.0e-4
  beta_end: 0.02
  prediction: v
train:
  steps: 6
  batch_size: 16
  lr: 1.0e-3
  warmup_steps: 2
  grad_clip: 1.0
  ema_decay: 0.9
  p_uncond: 0.1
  min_snr_gamma: 5.0
  log_every: 2
  sample_every: 0
  ckpt_every: 3
sample:
  sampler: ddim
  steps: 5
  guidance: 3.0
  eta: 0.0
"""


def test_the_latent_preset_builds_a_latent_model(tmp_path):
    path = tmp_path / "latent.yaml"
    path.write_text(LATENT_YAML)
    model = build_model(load_config(str(path)))
    assert isinstance(model, DigitLatentMLP) and model.latent_shape == (16,)
