"""The class-conditional UNet of Problem 1 (28x28 RGB digits, 20 joint classes + a null class)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dlcv.models.blocks import ResBlockWithAttention, downsample, time_mlp, upsample


@dataclass
class DigitUNetConfig:
    """Size of the network; resolutions halve at each level after the first (28 -> 14 -> 7)."""

    type: str = "unet"
    image_size: int = 28
    in_channels: int = 3
    base_channels: int = 64
    channel_mults: list[int] = field(default_factory=lambda: [1, 2, 2])
    num_res_blocks: int = 2
    attention_levels: list[int] = field(default_factory=lambda: [2])
    num_classes: int = 20
    dropout: float = 0.1
    norm_groups: int = 32
    patch_size: int = 1  # 2: work on 2x2 pixel patches (14x14 for 28x28), ~4x cheaper
    scale_shift_norm: bool = False  # condition by scaling/shifting normalised features (AdaGN)

    def __post_init__(self) -> None:
        if self.type != "unet":
            raise ValueError(f"model.type must be unet for this model, got {self.type!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class DigitUNet(nn.Module):
    """DDPM-style UNet (Ho et al. 2020, App. B) with a learnt class embedding added to the time one.

    With ``patch_size = p > 1`` the image is folded into ``p x p`` patches
    (pixel-unshuffle) before the first conv and unfolded after the last, so the
    network runs at ``1/p`` of the resolution (as in DiT's patchify stem).

    ``forward(x, t, y)``: ``y`` holds class indices in ``0 .. num_classes``; the
    index ``num_classes`` is the null class that classifier-free guidance uses
    for the unconditional prediction (:attr:`null_class`).
    """

    def __init__(self, config: DigitUNetConfig) -> None:
        super().__init__()
        self.config = config
        ch, groups, drop = config.base_channels, config.norm_groups, config.dropout
        ss = config.scale_shift_norm
        emb = 4 * ch
        patch_channels = config.in_channels * config.patch_size**2
        self.time = time_mlp(ch, emb)
        self.class_embedding = nn.Embedding(config.num_classes + 1, emb)
        self.stem = nn.Conv2d(patch_channels, ch, 3, padding=1)

        self.down = nn.ModuleList()
        skips, cur = [ch], ch
        last = len(config.channel_mults) - 1
        for level, mult in enumerate(config.channel_mults):
            attn = level in config.attention_levels
            for _ in range(config.num_res_blocks):
                self.down.append(ResBlockWithAttention(cur, ch * mult, emb, attn, drop, groups, ss))
                cur = ch * mult
                skips.append(cur)
            if level != last:
                self.down.append(downsample(cur))
                skips.append(cur)

        self.mid = nn.ModuleList(
            [
                ResBlockWithAttention(cur, cur, emb, True, drop, groups, ss),
                ResBlockWithAttention(cur, cur, emb, False, drop, groups, ss),
            ]
        )

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mults))):
            attn = level in config.attention_levels
            for _ in range(config.num_res_blocks + 1):
                block = ResBlockWithAttention(cur + skips.pop(), ch * mult, emb, attn, drop, groups, ss)
                self.up.append(block)
                cur = ch * mult
            if level != 0:
                self.up.append(upsample(cur))

        self.out = nn.Sequential(
            nn.GroupNorm(min(groups, cur), cur), nn.SiLU(), nn.Conv2d(cur, patch_channels, 3, padding=1)
        )

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The shape of one sample the diffusion runs on: the image itself."""
        return (self.config.in_channels, self.config.image_size, self.config.image_size)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in ``[-1, 1]`` to the diffusion's space: the identity (pixel-space model)."""
        return images

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """The identity (see :meth:`encode`)."""
        return latents

    def clamp_x0(self, x0: torch.Tensor) -> torch.Tensor:
        """A predicted clean sample kept in the images' range ``[-1, 1]`` (the samplers' ``clip_x0``)."""
        return x0.clamp(-1.0, 1.0)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        emb = self.time(t) + self.class_embedding(y)
        p = self.config.patch_size
        h = self.stem(F.pixel_unshuffle(x, p) if p > 1 else x)
        stack = [h]
        for block in self.down:
            h = block(h, emb) if isinstance(block, ResBlockWithAttention) else block(h)
            stack.append(h)
        for block in self.mid:
            h = block(h, emb)
        for block in self.up:
            if isinstance(block, ResBlockWithAttention):
                h = block(torch.cat([h, stack.pop()], dim=1), emb)
            else:
                h = block(h)
        h = self.out(h)
        return F.pixel_shuffle(h, p) if p > 1 else h
