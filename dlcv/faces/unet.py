"""The course's pretrained face UNet (Problem 2), defined from ``docs/face_unet.md``.

A DDPM noise-prediction UNet in the layout of Ho et al., "Denoising Diffusion
Probabilistic Models" (2020), Appendix B: six resolution levels with channel
multipliers ``(1, 1, 2, 2, 4, 4)``, two residual blocks per level, self-attention
at the fifth level (16x16 for 256x256 inputs), a middle of two residual blocks
(the first with attention) and a decoder that concatenates every encoder output.

At ``base_channels=128`` the state dict has exactly the names and shapes of the
course's ``UNet.pt`` (427 entries); smaller widths give the same architecture
for tests and cheap training. Inputs must have height and width divisible by 32
(five downsamplings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from dlcv.models.blocks import ResBlockWithAttention, downsample, time_mlp, upsample

CHANNEL_MULT = (1, 1, 2, 2, 4, 4)
ATTENTION_LEVELS = (4,)
NUM_RES_BLOCKS = 2
DOWN_FACTOR = 2 ** (len(CHANNEL_MULT) - 1)


@dataclass(frozen=True)
class _Stage:
    """One named module of the encoder or decoder: ``kind`` is conv, res, down or up."""

    name: str
    kind: str
    in_ch: int
    out_ch: int
    attention: bool = False


def _layout(base: int) -> tuple[list[_Stage], list[_Stage]]:
    """The encoder (``down1..down18``) and decoder (``up1..up23``) of the spec's tables."""
    down: list[_Stage] = [_Stage("down1", "conv", 3, base)]
    skip_channels = [base]
    ch = base
    for level, mult in enumerate(CHANNEL_MULT):
        for _ in range(NUM_RES_BLOCKS):
            out = base * mult
            down.append(_Stage(f"down{len(down) + 1}", "res", ch, out, level in ATTENTION_LEVELS))
            ch = out
            skip_channels.append(ch)
        if level != len(CHANNEL_MULT) - 1:
            down.append(_Stage(f"down{len(down) + 1}", "down", ch, ch))
            skip_channels.append(ch)
    up: list[_Stage] = []
    for level, mult in reversed(list(enumerate(CHANNEL_MULT))):
        for _ in range(NUM_RES_BLOCKS + 1):
            out = base * mult
            skip = skip_channels.pop()
            up.append(_Stage(f"up{len(up) + 1}", "res", ch + skip, out, level in ATTENTION_LEVELS))
            ch = out
        if level != 0:
            up.append(_Stage(f"up{len(up) + 1}", "up", ch, ch))
    assert not skip_channels
    return down, up


class FaceUNet(nn.Module):
    """``forward(x, t) -> eps`` for ``x`` of shape ``(B, 3, H, W)``, ``H, W`` multiples of 32.

    ``base_channels`` is the width of the first level (128 for the course's
    ``UNet.pt``); the time embedding is ``4 * base_channels`` wide after a
    sinusoidal embedding of ``base_channels``. ``dropout`` acts inside the
    residual blocks (training only). GroupNorm uses 32 groups (the spec's) when
    ``base_channels`` is a multiple of 32, else ``gcd(32, base_channels)`` so that
    every width divides evenly.
    """

    def __init__(
        self, base_channels: int = 128, dropout: float = 0.0, norm_groups: int | None = None
    ) -> None:
        super().__init__()
        if base_channels < 1:
            raise ValueError("base_channels must be positive")
        if norm_groups is None:
            norm_groups = math.gcd(32, base_channels)
        self.base_channels = base_channels
        emb = 4 * base_channels
        self.time = time_mlp(base_channels, emb)
        down, up = _layout(base_channels)
        self._down_names = [s.name for s in down]
        self._up_names = [s.name for s in up]
        for stage in down:
            self.add_module(stage.name, self._build(stage, emb, dropout, norm_groups))
        top = base_channels * CHANNEL_MULT[-1]
        self.mid1 = ResBlockWithAttention(top, top, emb, True, dropout, norm_groups)
        self.mid2 = ResBlockWithAttention(top, top, emb, False, dropout, norm_groups)
        for stage in up:
            self.add_module(stage.name, self._build(stage, emb, dropout, norm_groups))
        self.out = nn.Sequential(
            nn.GroupNorm(min(norm_groups, base_channels), base_channels),
            nn.SiLU(),
            nn.Conv2d(base_channels, 3, 3, padding=1),
        )

    @staticmethod
    def _build(stage: _Stage, emb: int, dropout: float, norm_groups: int) -> nn.Module:
        if stage.kind == "conv":
            return nn.Conv2d(stage.in_ch, stage.out_ch, 3, padding=1)
        if stage.kind == "down":
            return downsample(stage.in_ch)
        if stage.kind == "up":
            return upsample(stage.in_ch)
        return ResBlockWithAttention(stage.in_ch, stage.out_ch, emb, stage.attention, dropout, norm_groups)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % DOWN_FACTOR or x.shape[-2] % DOWN_FACTOR:
            raise ValueError(
                f"FaceUNet needs height and width divisible by {DOWN_FACTOR}, got {tuple(x.shape)}"
            )
        temb = self.time(t.float())
        h = x
        skips: list[torch.Tensor] = []
        for name in self._down_names:
            module = getattr(self, name)
            h = module(h, temb) if isinstance(module, ResBlockWithAttention) else module(h)
            skips.append(h)
        h = self.mid2(self.mid1(h, temb), temb)
        for name in self._up_names:
            module = getattr(self, name)
            if isinstance(module, ResBlockWithAttention):
                h = module(torch.cat([h, skips.pop()], dim=1), temb)
            else:
                h = module(h)
        return self.out(h)


def infer_base_channels(state_dict: dict[str, torch.Tensor]) -> int:
    """The ``base_channels`` a FaceUNet state dict was built with (``down1``'s output width)."""
    weight = state_dict.get("down1.weight")
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        raise KeyError("down1.weight")
    return int(weight.shape[0])
