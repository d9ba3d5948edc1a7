import pytest
import torch

from dlcv.digits.model import build_model, load_config
from dlcv.digits.unet import DigitUNet, DigitUNetConfig


@pytest.mark.parametrize("patch_size,scale_shift", [(1, False), (2, False), (2, True)])
def test_output_has_the_input_shape_and_depends_on_the_class(patch_size, scale_shift):
    cfg = DigitUNetConfig(
        base_channels=16,
        channel_mults=[1, 2],
        num_res_blocks=1,
        attention_levels=[1],
        norm_groups=8,
        patch_size=patch_size,
        scale_shift_norm=scale_shift,
    )
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
    shape = (1, *model.latent_shape)
    with torch.no_grad():
        out = model(torch.randn(shape), torch.tensor([5]), torch.tensor([3]))
        image = model.decode(out)
    assert out.shape == shape
    assert image.shape == (1, 3, 28, 28)


def test_scale_shift_norm_modulates_the_normalised_features():
    from dlcv.models.blocks import ResBlock

    block = ResBlock(8, 8, 16, norm_groups=4, scale_shift=True).eval()
    assert block.time[1].out_features == 16  # a scale and a shift per channel
    torch.nn.init.zeros_(block.time[1].weight)
    torch.nn.init.zeros_(block.time[1].bias)
    x, emb = torch.randn(2, 8, 5, 5), torch.randn(2, 16)
    plain = block(x, emb)  # zero scale and shift: norm2(h) unchanged
    with torch.no_grad():
        block.time[1].bias[8:] = 0.5  # shift every channel by 0.5 after the norm
    shifted = block(x, emb)
    h = block.norm2(block.conv1(torch.nn.functional.silu(block.norm1(x))))
    expected = block.conv2(torch.nn.functional.silu(h + 0.5)) + x
    torch.testing.assert_close(shifted, expected)
    assert not torch.allclose(plain, shifted)
