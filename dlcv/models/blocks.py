"""UNet building blocks shared by the digit UNet (PB1) and the face UNet (PB2).

Names of submodules follow the face UNet's state dict (``docs/face_unet.md``),
so both networks are assembled from the same pieces.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SinusoidalEmbedding(nn.Module):
    """Transformer-style timestep embedding (Vaswani et al. 2017, Sec. 3.5).

    ``cat(sin(t * inv_freq), cos(t * inv_freq))`` with
    ``inv_freq[i] = exp(-2i ln(10000) / dim)``, sin half first; ``inv_freq`` is a
    registered (persistent) buffer, as in the face UNet's state dict.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError("embedding width must be even")
        inv_freq = torch.exp(-torch.arange(0, dim, 2, dtype=torch.float32) * math.log(10000) / dim)
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[:, None] * self.inv_freq[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


def time_mlp(base: int, width: int) -> nn.Sequential:
    """``time.0`` sinusoidal(base) -> ``time.1`` Linear -> ``time.2`` swish -> ``time.3`` Linear."""
    return nn.Sequential(
        SinusoidalEmbedding(base), nn.Linear(base, width), nn.SiLU(), nn.Linear(width, width)
    )


class ResBlock(nn.Module):
    """Residual block conditioned on a time (and class) embedding.

    ``h = conv1(swish(norm1(x)))``; then either the embedding is added,
    ``h = norm2(h + time(emb))`` (DDPM), or with ``scale_shift`` it modulates the
    normalised features, ``h = norm2(h) * (1 + scale) + shift`` with ``scale, shift =
    time(emb)`` (adaptive group norm, Dhariwal & Nichol 2021, Sec. 3);
    ``h = conv2(dropout(swish(h)))``; returns ``h + skip(x)`` where ``skip`` is a
    1x1 conv only when channels change.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        emb_dim: int,
        dropout: float = 0.0,
        norm_groups: int = 32,
        scale_shift: bool = False,
    ) -> None:
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(min(norm_groups, in_ch), in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * out_ch if scale_shift else out_ch))
        self.norm2 = nn.GroupNorm(min(norm_groups, out_ch), out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        cond = self.time(emb)[:, :, None, None]
        if self.scale_shift:
            scale, shift = cond.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + cond)
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Single-head self-attention over all spatial positions, with a residual.

    ``q, k, v = split(qkv(norm(x)))`` in that order; ``x + out(softmax(q k^T / sqrt(C)) v)``,
    computed by ``scaled_dot_product_attention`` (flash / memory-efficient kernels on GPU).
    """

    def __init__(self, channels: int, norm_groups: int = 32) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(min(norm_groups, channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, 1, c, h * w).transpose(-1, -2).unbind(1)
        attended = F.scaled_dot_product_attention(q, k, v)  # (b, 1, h*w, c)
        return x + self.out(attended.transpose(-1, -2).reshape(b, c, h, w))


class ResBlockWithAttention(nn.Module):
    """``resblocks`` followed by an optional ``attention``."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        emb_dim: int,
        attention: bool = False,
        dropout: float = 0.0,
        norm_groups: int = 32,
        scale_shift: bool = False,
    ) -> None:
        super().__init__()
        self.resblocks = ResBlock(in_ch, out_ch, emb_dim, dropout, norm_groups, scale_shift)
        self.attention = SelfAttention(out_ch, norm_groups) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self.resblocks(x, emb)
        return self.attention(x) if self.attention is not None else x


def downsample(channels: int) -> nn.Sequential:
    """``0``: 3x3 conv with stride 2 (halves height and width)."""
    return nn.Sequential(nn.Conv2d(channels, channels, 3, stride=2, padding=1))


def upsample(channels: int) -> nn.Sequential:
    """``0``: nearest-neighbour x2 (no weights), ``1``: 3x3 conv."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(channels, channels, 3, padding=1)
    )
