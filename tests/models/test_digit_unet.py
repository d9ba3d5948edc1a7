import pytest
import torch

from dlcv.digit_model import build_model, load_config
from dlcv.models.digit_unet import DigitUNet, DigitUNetConfig


@pytest.mark.parametrize("patch_size", [1, 2])
def test_output_has_the_input_shape_and_depends_on_the_class(patch_size):
    cfg = DigitUNetConfig(base_channels=16, channel_mults=[1, 2], num_res_blocks=1, attention_levels=[1],
                          norm_groups=8, patch_size=patch_size)  # fmt: skip
    model = DigitUNet(cfg).eval()
    x, t = torch.randn(2, 3, 28, 28), torch.tensor([10, 900])
    a = model(x, t, torch.tensor([0, 0]))
    b = model(x, t, torch.tensor([model.null_class, 19]))
    assert a.shape == x.shape
    assert not torch.allclose(a, b)
    assert model.class_embedding.num_embeddings == 21


@pytest.mark.parametrize("preset", ["default", "demo", "tiny"])
def test_presets_build(preset):
    model = build_model(load_config(preset))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 28, 28), torch.tensor([5]), torch.tensor([3]))
    assert out.shape == (1, 3, 28, 28)
