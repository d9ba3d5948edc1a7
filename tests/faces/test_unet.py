"""The face UNet against ``docs/face_unet.md``: state-dict layout, the forward function, loading."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dlcv.faces.unet import FaceUNet, infer_base_channels
from dlcv.io.checkpoint import state_dict_mismatch

from ..conftest import FIXTURES

TSV = FIXTURES / "face_unet_state_dict.tsv"

# The spec's tables at the course width (128): (name, kind, in, out, attention).
DOWN = [("down1", "conv", 3, 128, False)]
DOWN += [(f"down{i}", "res", 128, 128, False) for i in (2, 3)] + [("down4", "down", 128, 128, False)]
DOWN += [(f"down{i}", "res", 128, 128, False) for i in (5, 6)] + [("down7", "down", 128, 128, False)]
DOWN += [("down8", "res", 128, 256, False), ("down9", "res", 256, 256, False)]
DOWN += [("down10", "down", 256, 256, False)]
DOWN += [(f"down{i}", "res", 256, 256, False) for i in (11, 12)] + [("down13", "down", 256, 256, False)]
DOWN += [("down14", "res", 256, 512, True), ("down15", "res", 512, 512, True)]
DOWN += [("down16", "down", 512, 512, False)]
DOWN += [(f"down{i}", "res", 512, 512, False) for i in (17, 18)]
UP = [(f"up{i}", "res", 1024, 512, False) for i in (1, 2, 3)] + [("up4", "up", 512, 512, False)]
UP += [(f"up{i}", "res", 1024, 512, True) for i in (5, 6)] + [("up7", "res", 768, 512, True)]
UP += [("up8", "up", 512, 512, False), ("up9", "res", 768, 256, False)]
UP += [(f"up{i}", "res", 512, 256, False) for i in (10, 11)] + [("up12", "up", 256, 256, False)]
UP += [(f"up{i}", "res", 512, 256, False) for i in (13, 14)] + [("up15", "res", 384, 256, False)]
UP += [("up16", "up", 256, 256, False), ("up17", "res", 384, 128, False)]
UP += [(f"up{i}", "res", 256, 128, False) for i in (18, 19)] + [("up20", "up", 128, 128, False)]
UP += [(f"up{i}", "res", 256, 128, False) for i in (21, 22, 23)]


def read_tsv() -> list[tuple[str, tuple[int, ...]]]:
    lines = TSV.read_text().splitlines()
    assert lines[0].split("\t") == ["key", "shape"]
    rows = []
    for line in lines[1:]:
        key, shape = line.split("\t")
        rows.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())))
    return rows


def test_state_dict_names_and_shapes_equal_the_tsv_exactly():
    with torch.device("meta"):  # no memory, no initialisation: a fraction of a second
        model = FaceUNet()
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    expected = read_tsv()
    assert len(expected) == 427
    assert ours == expected  # same names, same shapes, same order
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(millions - 113.7) < 0.05


# ---- the spec's forward, written from the spec alone, on a state dict ----------------------------


def _norm(sd, p, x):
    return F.group_norm(x, 32, sd[p + ".weight"], sd[p + ".bias"], eps=1e-5)


def _conv(sd, p, x, **kw):
    return F.conv2d(x, sd[p + ".weight"], sd[p + ".bias"], **kw)


def _res(sd, p, x, temb):
    h = _conv(sd, p + ".conv1", F.silu(_norm(sd, p + ".norm1", x)), padding=1)
    h = h + F.linear(F.silu(temb), sd[p + ".time.1.weight"], sd[p + ".time.1.bias"])[:, :, None, None]
    h = _conv(sd, p + ".conv2", F.silu(_norm(sd, p + ".norm2", h)), padding=1)
    return h + (_conv(sd, p + ".skip", x) if p + ".skip.weight" in sd else x)


def _attention(sd, p, x):
    b, c, hh, ww = x.shape
    qkv = _conv(sd, p + ".qkv", _norm(sd, p + ".norm", x)).flatten(2)  # (b, 3c, n)
    q, k, v = qkv[:, :c], qkv[:, c : 2 * c], qkv[:, 2 * c :]
    weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)  # (b, n_query, n_key)
    attended = (weights @ v.transpose(1, 2)).transpose(1, 2).reshape(b, c, hh, ww)
    return x + _conv(sd, p + ".out", attended)


def _block(sd, name, kind, x, temb, attention):
    if kind == "conv":
        return _conv(sd, name, x, padding=1)
    if kind == "down":
        return _conv(sd, name + ".0", x, stride=2, padding=1)
    if kind == "up":
        return _conv(sd, name + ".1", F.interpolate(x, scale_factor=2, mode="nearest"), padding=1)
    h = _res(sd, name + ".resblocks", x, temb)
    return _attention(sd, name + ".attention", h) if attention else h


def spec_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, t: torch.Tensor, width: int) -> torch.Tensor:
    scale = width / 128
    half = width // 2
    inv_freq = torch.exp(-(2 * torch.arange(half, dtype=torch.float64)) * math.log(10000) / width).float()
    torch.testing.assert_close(sd["time.0.inv_freq"], inv_freq)
    angles = t.float()[:, None] * inv_freq[None]
    temb = torch.cat([angles.sin(), angles.cos()], dim=1)
    temb = F.linear(temb, sd["time.1.weight"], sd["time.1.bias"])
    temb = F.linear(F.silu(temb), sd["time.3.weight"], sd["time.3.bias"])
    skips, h = [], x
    for name, kind, _, c_out, attention in DOWN:
        h = _block(sd, name, kind, h, temb, attention)
        assert h.shape[1] == c_out * scale
        skips.append(h)
    h = _attention(sd, "mid1.attention", _res(sd, "mid1.resblocks", h, temb))
    h = _res(sd, "mid2.resblocks", h, temb)
    for name, kind, c_in, c_out, attention in UP:
        if kind == "res":
            h = torch.cat([h, skips.pop()], dim=1)
            assert h.shape[1] == c_in * scale
        h = _block(sd, name, kind, h, temb, attention)
        assert h.shape[1] == c_out * scale
    assert not skips
    h = F.silu(F.group_norm(h, 32, sd["out.0.weight"], sd["out.0.bias"], eps=1e-5))
    return _conv(sd, "out.2", h, padding=1)


@pytest.fixture(scope="module")
def narrow_unet() -> FaceUNet:
    """Width 32: the course's architecture with every channel count divided by 4 (GroupNorm keeps 32)."""
    torch.manual_seed(0)
    model = FaceUNet(32).eval()
    with torch.no_grad():  # random, non-trivial affine parameters for the norms
        for name, p in model.named_parameters():
            if "norm" in name or name.startswith("out.0"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def test_forward_is_the_spec_function_for_any_multiple_of_32(narrow_unet):
    sd = narrow_unet.state_dict()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 32, 64, generator=g)
    t = torch.tensor([981, 1])
    with torch.no_grad():
        ours = narrow_unet(x, t)
        expected = spec_forward(sd, x, t, 32)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    assert ours.abs().mean() > 0.05  # not trivially zero
    with torch.no_grad():  # the timestep matters
        assert not torch.allclose(narrow_unet(x, torch.tensor([500, 500])), ours)


def test_sizes_that_are_not_multiples_of_32_are_refused(narrow_unet):
    with pytest.raises(ValueError, match="divisible by 32"):
        narrow_unet(torch.zeros(1, 3, 48, 32), torch.tensor([0]))


def test_saved_state_dict_reloads_strictly_with_weights_only_and_identical_outputs(narrow_unet, tmp_path):
    path = tmp_path / "UNet.pt"
    torch.save(narrow_unet.state_dict(), path)
    fresh = FaceUNet(32).eval()
    fresh.load_state_dict(torch.load(path, weights_only=True), strict=True)
    x, t = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2)), torch.tensor([421])
    with torch.no_grad():
        assert torch.equal(fresh(x, t), narrow_unet(x, t))


def test_width_inference_and_mismatch_description():
    with torch.device("meta"):
        model = FaceUNet(16)
        wider = FaceUNet(32)
    state = dict(model.state_dict())
    assert infer_base_channels(state) == 16
    assert infer_base_channels(wider.state_dict()) == 32
    assert state_dict_mismatch(model, state) is None
    del state["mid1.attention.qkv.weight"]
    state["extra.weight"] = torch.zeros(1)
    state["out.2.bias"] = torch.zeros(4)
    message = state_dict_mismatch(model, state)
    assert "1 missing (mid1.attention.qkv.weight)" in message
    assert "1 unexpected (extra.weight)" in message
    assert "out.2.bias (4,) (expected (3,))" in message and "\n" not in message
    with pytest.raises(KeyError):
        infer_base_channels({"time.1.weight": torch.zeros(2, 2)})
