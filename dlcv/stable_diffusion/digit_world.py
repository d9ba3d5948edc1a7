"""A small text-to-image world in which Textual Inversion can be watched learning, on a CPU.

Stable Diffusion's weights are not available where this project is built and tested, so
the question "does our Textual Inversion find an embedding that makes the model draw the
concept?" is asked of a small model of the same families instead:

* a diffusers ``UNet2DConditionModel`` (three levels, cross-attention in the middle block and
  optionally lower levels, the caption also attention-pooled into the time embedding, diffusers'
  ``addition_embed_type="text"``, AdaGN time conditioning, the caption paths zeroed at the
  start) and a transformers
  ``CLIPTextModel`` (two layers, width 64, random and frozen, as SD's CLIP is frozen) with the
  project's CLIP tokenizer and its full BPE vocabulary;
* an ``AutoencoderKL`` built, not trained (:func:`pixel_autoencoder`): with one level the
  identity, so the "latents" are the pixels themselves (28x28); with two (``pool=2``) the
  encoder takes 2x2 means and the decoder repeats them (14x14 latents, a UNet four times
  cheaper per image; the digit grader still reads 0.99 of such images right). The real code
  path (encode the training views, sample latents, decode) runs unchanged, at no training cost;
* trained (:func:`train_world`) on the procedural digits of :mod:`dlcv.data.synthetic_digits`
  in both styles (MNIST-M-like and SVHN-like) with captions that name the digit ("a photo
  of a digit three") but never the style, except for one held-out digit, whose images are
  only ever captioned with the generic "a photo of a digit"-type captions. Part of the other
  digits' images get generic captions too, and the unconditional caption ("", for
  classifier-free guidance) is given to images of that same generic group, so that guidance
  does not by itself favour the held-out digit. Captions may also carry words that describe
  the image without naming its style or its digit, as SD's captions describe what a picture
  looks like: its look (:data:`APPEARANCE_WORDS`, measured from the pixels: smooth or grainy,
  pale or vivid) and its digit's shape (:data:`SHAPE_WORDS`, measured from the digit's strokes,
  the held-out digit's too: open or looped, top- or bottom-heavy, narrow- or broad-based), and
  words that say nothing about it (:func:`filler_words`). Without descriptions no token can
  steer a style (the caption would carry nothing about it) and a token for the held-out digit
  only finds the nearest named digit; without filler words the world reads any word it never
  saw as a description. The model can draw the held-out digit and both styles but has no word
  for any of them. The UNet predicts
  the noise, as SD's does; its error is weighted like an x0 error (``1/SNR``, clipped) at
  high noise, the band where only the caption tells what to draw.

Training such a world takes longer than the demo's minutes on a CPU, so a trained one ships
with the package (:data:`SHIPPED_WORLD`, :func:`export_world`, :func:`load_shipped_world`:
the UNet in float16 and the text encoder without its token table, which is redrawn from the
seed, about 2.5 MB); ``python bench/bench_ti_learns.py --train-world`` trains it again from
scratch. How far a world listens to its captions is what limits the check:
``--world-only`` prints its named-digit rate (images of "a photo of a digit three" etc.
graded), and ``docs/ti_world.md`` keeps what was measured on the way.

The world is saved as a diffusers folder (``unet/ vae/ text_encoder/ tokenizer/ scheduler/``),
so ``PB3/train.py --sd-ckpt WORLD`` and the generation path of ``PB3/inference.py`` load it
as they load Stable Diffusion. ``bench/bench_ti_learns.py`` writes it and runs the check.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from diffusers.models.resnet import ResnetBlock2D
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel

from dlcv.clip_tokenizer import offline_clip_tokenizer
from dlcv.data.synthetic_digits import render_mnistm_style, render_svhn_style
from dlcv.io.checkpoint import load_weights, save_weights
from dlcv.io.images import to_uint8
from dlcv.stable_diffusion.config import SD_V1_TEXT_ENCODER, SD_V1_UNET, SD_V1_VAE, SDConfig
from dlcv.stable_diffusion.generation import decode_latents, encode_text
from dlcv.stable_diffusion.loading import StableDiffusion, quiet_diffusers
from dlcv.stable_diffusion.ti_data import OBJECT_TEMPLATES
from dlcv.stable_diffusion.tiny import save_diffusers_folder
from dlcv.training import TrainConfig, train

SIZE = 28
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GENERIC_WORD = "digit"
STYLES = ("mnistm", "svhn")  # style index 0 = MNIST-M-like, 1 = SVHN-like
#: Caption templates of the world ("{}" = "digit three", or "digit" in a generic caption).
WORLD_TEMPLATES: tuple[str, ...] = (*OBJECT_TEMPLATES, "{}", "the {}")
#: The text encoder's token-embedding table is drawn 25 times wider than CLIP's init (std 0.5,
#: not 0.02): the words, not the positions, then dominate the frozen encoder's hidden states
#: (the digit word's state differs 0.78 between "three" and "five", 0.21 at CLIP's scale).
#: With it (and the caption paths zeroed, AdaGN, a constant learning rate) the bench's world
#: reached a named-digit rate of 0.28 in 1,500 steps; at CLIP's scale, 0.11 (chance).
TOKEN_SCALE = 25.0
_BIG = 1000.0  # the constant channels that make the autoencoder's GroupNorm a fixed scaling


def world_config(
    channels: Sequence[int] = (16, 32, 64),
    text_width: int = 64,
    text_layers: int = 2,
    attention_levels: int = 0,
    pooled_text: bool = True,
    scaling_factor: float = 1.0,
    pool: int = 1,
    scale_shift: bool = True,
) -> SDConfig:
    """The world's architecture: SD v1's classes and settings, small, on 28x28 pixels.

    ``pool`` (1 or 2) is the autoencoder's downsampling (:func:`pixel_autoencoder`): the UNet
    works on the pixels themselves (28x28) or on their 2x2 means (14x14, four times cheaper).
    """
    if pool not in (1, 2):
        raise ValueError(f"pool must be 1 or 2, got {pool}")
    ch = list(channels)
    plain = len(ch) - attention_levels  # levels without cross-attention (the middle block always has it)
    return SDConfig(
        unet={
            **SD_V1_UNET,
            "sample_size": SIZE // pool,
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ["DownBlock2D"] * plain + ["CrossAttnDownBlock2D"] * attention_levels,
            "up_block_types": ["CrossAttnUpBlock2D"] * attention_levels + ["UpBlock2D"] * plain,
            "block_out_channels": ch,
            "layers_per_block": 1,
            "cross_attention_dim": text_width,
            "attention_head_dim": 4,
            "norm_num_groups": 8,
            # The caption also enters through the time embedding (diffusers' "text" addition
            # embedding: attention pooling of the same CLIP hidden states), so that a world
            # trained for minutes on a CPU already listens to its captions; cross-attention
            # alone learns that far more slowly.
            "addition_embed_type": "text" if pooled_text else None,
            "addition_embed_type_num_heads": 4,
            # The time (and pooled caption) embedding scales and shifts the normalised features
            # (AdaGN) rather than only adding to them.
            "resnet_time_scale_shift": "scale_shift" if scale_shift else "default",
        },
        vae={
            **SD_V1_VAE,
            "sample_size": SIZE,
            "down_block_types": ["DownEncoderBlock2D"] * pool,
            "up_block_types": ["UpDecoderBlock2D"] * pool,
            "block_out_channels": [8] * pool,
            "layers_per_block": 1,
            "latent_channels": 3,
            "norm_num_groups": 1,
        },
        text_encoder={
            **SD_V1_TEXT_ENCODER,
            "hidden_size": text_width,
            "intermediate_size": 4 * text_width,
            "num_hidden_layers": text_layers,
            "num_attention_heads": 4,
            "projection_dim": text_width,
        },
        scaling_factor=scaling_factor,
        resolution=SIZE,
    )


@torch.no_grad()
def pixel_autoencoder(config: SDConfig) -> AutoencoderKL:
    """An ``AutoencoderKL`` of ``config.vae`` (one or two levels of 8 channels, GroupNorm of one
    group, 3 latent channels) built, not trained: with one level its encoder and decoder are the
    identity to about 1e-5; with two, the encoder takes 2x2 means and the decoder repeats each
    latent pixel 2x2 (nearest neighbour).

    Every residual branch (ResNet blocks, the mid-block attention) is zeroed, so the blocks
    pass their input through. ``conv_in`` writes ``[x, -x, K, -K]`` (K large); the final
    GroupNorm then only divides by about ``K/2`` (the mean is exactly zero, and the variance
    is ``K^2/4`` up to ``mean(x^2)/4``), and since ``silu(a) - silu(-a) = a``, ``conv_out``
    recovers ``x`` exactly from the two signed copies. The encoder's downsampling convolution
    (stride 2, on the input padded right and below) averages its 2x2 top-left taps, which keeps
    the constants; the decoder's upsampling (nearest neighbour, then a convolution) gets the
    identity convolution. The posterior's log-variance is -30 (the clamp's floor): sampling
    it adds noise of standard deviation 3e-7.
    """
    vae_cfg = config.vae
    levels = len(vae_cfg["block_out_channels"])
    shape = (vae_cfg["block_out_channels"], vae_cfg["norm_num_groups"], vae_cfg["latent_channels"])
    if shape != ([8] * levels, 1, 3) or levels not in (1, 2):
        raise ValueError("pixel_autoencoder needs one or two levels of 8 channels, one norm group, 3 latents")
    with quiet_diffusers():
        vae = AutoencoderKL(**vae_cfg, scaling_factor=config.scaling_factor)
    for module in vae.modules():
        if isinstance(module, ResnetBlock2D):
            module.conv2.weight.zero_()
            module.conv2.bias.zero_()
        elif isinstance(module, Attention):
            module.to_out[0].weight.zero_()
            module.to_out[0].bias.zero_()

    def signed_copies(conv: nn.Conv2d, n: int) -> None:  # out = [x, -x, K, -K] from the centre tap
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(n):
            conv.weight[c, c, 1, 1] = 1.0
            conv.weight[n + c, c, 1, 1] = -1.0
        conv.bias[2 * n] = _BIG
        conv.bias[2 * n + 1] = -_BIG

    def recombine(conv: nn.Conv2d, n: int) -> None:  # out_c = (K/2) (silu(y_c) - silu(y_{n+c}))
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(n):
            conv.weight[c, c, 1, 1] = _BIG / 2
            conv.weight[c, n + c, 1, 1] = -_BIG / 2

    def eye(conv: nn.Conv2d, taps: tuple[tuple[int, int], ...] = ((0, 0),)) -> None:  # mean of the taps
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(min(conv.in_channels, conv.out_channels)):
            for ky, kx in taps:
                conv.weight[c, c, ky, kx] = 1.0 / len(taps)

    signed_copies(vae.encoder.conv_in, 3)
    recombine(vae.encoder.conv_out, 3)
    vae.encoder.conv_out.bias[3:] = -30.0  # log-variance of the posterior
    eye(vae.quant_conv)
    eye(vae.post_quant_conv)
    signed_copies(vae.decoder.conv_in, 3)
    recombine(vae.decoder.conv_out, 3)
    for block in vae.encoder.down_blocks:
        for down in block.downsamplers or ():
            eye(down.conv, ((0, 0), (0, 1), (1, 0), (1, 1)))
    for block in vae.decoder.up_blocks:
        for up in block.upsamplers or ():
            eye(up.conv, ((1, 1),))
    for norm in (vae.encoder.conv_norm_out, vae.decoder.conv_norm_out):
        norm.weight.fill_(1.0)
        norm.bias.zero_()
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def silence_captions(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    """Zero where the caption enters the UNet: the cross-attentions' output projections and
    the pooled-caption embedding's last LayerNorm (so it adds nothing to the time embedding).

    The untrained UNet then ignores its caption exactly, and training grows these paths only
    where the caption helps (ControlNet's zero convolutions, DiT's adaLN-Zero), instead of first
    learning to shut out captions that it cannot use yet and that act on it as noise.
    """
    for module in unet.modules():
        if isinstance(module, Attention) and module.is_cross_attention:
            module.to_out[0].weight.zero_()
            module.to_out[0].bias.zero_()
    if unet.add_embedding is not None:
        unet.add_embedding.norm2.weight.zero_()
        unet.add_embedding.norm2.bias.zero_()
    return unet


def build_world(
    seed: int = 0, config: SDConfig | None = None, token_scale: float = TOKEN_SCALE
) -> StableDiffusion:
    """The untrained world: random UNet (its caption paths zeroed, :func:`silence_captions`) and
    text encoder (seeded; its token-embedding table drawn by :func:`token_table`), the pixel
    autoencoder."""
    config = config or world_config()
    torch.manual_seed(seed)
    with quiet_diffusers():
        unet = silence_captions(UNet2DConditionModel(**config.unet))
    text_encoder = CLIPTextModel(CLIPTextConfig(**config.text_encoder))
    with torch.no_grad():
        table = text_encoder.get_input_embeddings().weight
        std = text_encoder.config.initializer_range * token_scale
        table.copy_(token_table(seed, tuple(table.shape), std))
    sd = StableDiffusion(unet, pixel_autoencoder(config), text_encoder, offline_clip_tokenizer(), config)
    for net in (sd.unet, sd.vae, sd.text_encoder):
        net.eval().requires_grad_(False)
    return sd


def token_table(seed: int, shape: tuple[int, int], std: float) -> torch.Tensor:
    """The text encoder's token-embedding table: normal, ``std`` wide, from its own generator, so
    that the same seed gives the same table whatever library draws the rest (the shipped world
    stores everything else and redraws this 49,408-row table)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * std


#: The trained world shipped with the package (:func:`export_world`, :func:`load_shipped_world`).
SHIPPED_WORLD = Path(__file__).resolve().parents[1] / "assets" / "digit_world"


def _token_table_key(text_encoder: CLIPTextModel) -> str:
    """The state-dict name of the token-embedding table (it differs between transformers versions)."""
    table = text_encoder.get_input_embeddings().weight
    return next(name for name, p in text_encoder.named_parameters() if p is table)


def export_world(sd: StableDiffusion, folder: str | Path, info: dict) -> Path:
    """Write a trained world compactly: ``unet.safetensors`` (float16), ``text_encoder.safetensors``
    (its transformer, float32, without the token table that :func:`build_world` redraws from the
    seed) and ``world.json`` (``info``: at least ``seed`` and ``architecture``, the keyword
    arguments of :func:`world_config`; also how it was trained and what it measured)."""
    if not {"seed", "architecture"} <= set(info):
        raise ValueError("info needs 'seed' and 'architecture'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    skip = _token_table_key(sd.text_encoder)
    unet = {k: v.to(torch.float16) for k, v in sd.unet.state_dict().items()}
    save_weights(unet, folder / "unet.safetensors")
    save_weights({k: v.float() for k, v in sd.text_encoder.state_dict().items() if k != skip},
                 folder / "text_encoder.safetensors")  # fmt: skip
    (folder / "world.json").write_text(json.dumps(info, indent=2) + "\n")
    return folder


def load_shipped_world(folder: str | Path = SHIPPED_WORLD) -> tuple[StableDiffusion, dict]:
    """The world written by :func:`export_world` (float32) and its ``world.json``."""
    folder = Path(folder)
    info = json.loads((folder / "world.json").read_text())
    sd = build_world(info["seed"], world_config(**info["architecture"]))
    unet, _ = load_weights(folder / "unet.safetensors")
    sd.unet.load_state_dict({k: v.float() for k, v in unet.items()})
    text, _ = load_weights(folder / "text_encoder.safetensors")
    missing, unexpected = sd.text_encoder.load_state_dict(text, strict=False)
    if [k for k in missing if k != _token_table_key(sd.text_encoder)] or unexpected:
        raise ValueError(f"{folder}: the text encoder's weights do not fit ({missing=}, {unexpected=})")
    return sd, info


def render_digits(
    digits: Sequence[int], styles: Sequence[int], seed: int, return_masks: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """uint8 images ``(N, 3, 28, 28)`` of ``digits`` in ``styles`` (0 MNIST-M-like, 1 SVHN-like);
    with ``return_masks``, also the digits' own ink coverage ``(N, 28, 28)`` in ``[0, 1]``."""
    d = np.asarray(digits, dtype=np.int64)
    s = np.asarray(styles, dtype=np.int64)
    out = np.empty((len(d), SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.zeros((len(d), SIZE, SIZE), dtype=np.float32)
    rng = np.random.default_rng(seed)
    for k, render in enumerate((render_mnistm_style, render_svhn_style)):
        pick = np.flatnonzero(s == k)
        if len(pick):
            out[pick], masks[pick] = render(d[pick], rng, return_masks=True)
    images = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
    return (images, torch.from_numpy(masks)) if return_masks else images


#: Appearance words a world caption may carry, measured from the image's pixels (never a style's
#: name): its fine grain and its colourfulness. They describe any image, and each style only
#: leans one way (the SVHN-like renderer draws smooth, pale images more often than the
#: MNIST-M-like one), as a caption in SD's data describes a painting without naming its painter.
APPEARANCE_WORDS: tuple[tuple[str, str], ...] = (("smooth", "grainy"), ("pale", "vivid"))
_GRAIN_SPLIT, _VIVID_SPLIT = 0.04, 0.06  # thresholds of the two measures (in [0, 1] units)


def appearance(images: torch.Tensor) -> torch.Tensor:
    """Which appearance words describe uint8 ``images`` ``(N, 3, H, W)``: ``(N, 2)`` indices into
    :data:`APPEARANCE_WORDS` (grain: the mean absolute difference of the luma from its 3x3 mean,
    above 0.04 is grainy; colour: the mean absolute deviation of the channels from their mean,
    above 0.06 is vivid)."""
    x = images.float() / 255.0
    luma = (x * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True)
    local = nn.functional.avg_pool2d(luma, 3, 1, 1, count_include_pad=False)
    grain = (luma - local).abs().mean((1, 2, 3))
    vivid = (x - x.mean(1, keepdim=True)).abs().mean((1, 2, 3))
    return torch.stack([grain > _GRAIN_SPLIT, vivid > _VIVID_SPLIT], dim=1).long()


#: Shape words a world caption may carry, measured from the digit's own strokes (its ink, not the
#: background nor the neighbours of an SVHN-like digit): whether it encloses a loop, where the
#: weight of its ink sits, and how wide its base is. They describe every digit, the held-out one
#: too, and each is shared by several digits, as SD's captions describe what is in a picture
#: ("a small dog with short legs") without naming it. A held-out seven is open, top-heavy and
#: narrow-based; so are some ones (and, in part, fours and nines).
SHAPE_WORDS: tuple[tuple[str, str], ...] = (("open", "looped"), ("top-heavy", "bottom-heavy"),
                                            ("narrow-based", "broad-based"))  # fmt: skip
_TOP_HEAVY, _NARROW_BASE = 0.42, 0.5  # splits of the ink's centre height and base width (fractions)


def shape(masks: torch.Tensor) -> torch.Tensor:
    """Which shape words describe digits of ink coverage ``masks`` ``(N, H, W)`` in ``[0, 1]``:
    ``(N, 3)`` indices into :data:`SHAPE_WORDS`. Ink is coverage above 0.5. Looped: more than two
    background pixels that no path of background 4-neighbours joins to the border. Top-heavy: the
    ink's centre of mass in the top 42% of its bounding box. Narrow-based: the bottom fifth of the
    box's rows has ink in less than half of its columns."""
    ink = masks > 0.5
    _, h, w = ink.shape
    background = ~ink
    outside = torch.zeros_like(background)
    outside[:, [0, -1], :] = background[:, [0, -1], :]
    outside[:, :, [0, -1]] = background[:, :, [0, -1]]
    while True:  # flood the background from the border
        grown = outside.clone()
        grown[:, 1:] |= outside[:, :-1]
        grown[:, :-1] |= outside[:, 1:]
        grown[:, :, 1:] |= outside[:, :, :-1]
        grown[:, :, :-1] |= outside[:, :, 1:]
        grown &= background
        if torch.equal(grown, outside):
            break
        outside = grown
    looped = (background & ~outside).flatten(1).sum(1) > 2
    rows, cols = torch.arange(h), torch.arange(w)
    has_row, has_col = ink.any(2), ink.any(1)
    top = torch.where(has_row, rows, h).min(1).values
    bottom = torch.where(has_row, rows, -1).max(1).values
    left = torch.where(has_col, cols, w).min(1).values
    right = torch.where(has_col, cols, -1).max(1).values
    height, width = (bottom - top + 1).clamp_min(1), (right - left + 1).clamp_min(1)
    weight = masks.float().sum((1, 2)).clamp_min(1e-6)
    centre = (masks.float() * rows[:, None]).sum((1, 2)) / weight
    top_heavy = (centre - top) / height < _TOP_HEAVY
    base_rows = rows[None] >= (top + 0.8 * height).long()[:, None]
    base = (ink & base_rows[:, :, None]).any(1).sum(1)
    narrow = base / width < _NARROW_BASE
    return torch.stack([looped, ~top_heavy, ~narrow], dim=1).long()


def caption(digit: int | None, template: str = "a photo of a {}", words: Sequence[str | None] = ()) -> str:
    """A world caption: ``digit`` named ("a photo of a digit three"), or generic when None, with
    optional descriptive ``words`` before it ("a photo of a smooth pale open digit three")."""
    name = GENERIC_WORD if digit is None else f"{GENERIC_WORD} {DIGIT_WORDS[digit]}"
    return template.format(" ".join([*(w for w in words if w), name]))


#: Every descriptive axis of a caption, in caption order: the appearance words, then the shape words.
DESCRIPTIONS: tuple[tuple[str, str], ...] = (*APPEARANCE_WORDS, *SHAPE_WORDS)


@dataclass
class WorldData:
    """The world's training set: images, digits, styles, which images are captioned generically,
    and the words that describe each."""

    images: torch.Tensor  # uint8 (N, 3, 28, 28)
    digits: torch.Tensor  # long (N,)
    styles: torch.Tensor  # long (N,): 0 MNIST-M-like, 1 SVHN-like
    generic: torch.Tensor  # bool (N,): captioned without the digit's name
    words: torch.Tensor  # long (N, 5): per axis of DESCRIPTIONS, its word (:func:`appearance`, :func:`shape`)


def world_data(n: int, held_out: int, seed: int = 0, generic_fraction: float = 0.5) -> WorldData:
    """``n`` balanced images (digits and styles), the ``held_out`` digit always generic, the others
    generic with probability ``generic_fraction`` (fixed per image, from ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    digits = torch.arange(n) % 10
    digits = digits[torch.randperm(n, generator=g)]
    styles = torch.randperm(n, generator=g) % 2
    generic = (torch.rand(n, generator=g) < generic_fraction) | (digits == held_out)
    images, masks = render_digits(digits.tolist(), styles.tolist(), seed, return_masks=True)
    return WorldData(images, digits, styles, generic, torch.cat([appearance(images), shape(masks)], 1))


def filler_words(tokenizer) -> list[str]:
    """Words a world caption may carry that say nothing about its image: every alphabetic whole word
    of the tokenizer's vocabulary (sorted) except the world's own (templates, digit names, the
    descriptions) and those that begin with a digit's name ("sevens", "seventh"). Real captions
    are full of such words; a world that never saw one reads an unknown word (the "style" of
    "the digit five in the style of ...") as if it described the image (measured: fives in 14
    of 50 such images, 44 of 50 from "the digit five in a photo")."""
    own = {GENERIC_WORD, *DIGIT_WORDS, *(w for t in WORLD_TEMPLATES for w in t.replace("{}", " ").split())}
    own |= {part for pair in DESCRIPTIONS for word in pair for part in (word, *word.split("-"))}
    whole = (t[: -len("</w>")] for t in tokenizer.get_vocab() if t.endswith("</w>"))
    return sorted(w for w in whole if w.isascii() and w.isalpha() and w not in own
                  and not w.startswith(DIGIT_WORDS))  # fmt: skip


def world_captions(
    data: WorldData,
    index: torch.Tensor,
    template: torch.Tensor,
    shown: torch.Tensor,
    empty: torch.Tensor,
    fillers: Sequence[tuple[str, float] | None] | None = None,
) -> list[str]:
    """The captions of images ``index`` in one training step: :data:`WORLD_TEMPLATES` ``template``,
    the digit named unless the image is generic, the image's words of the axes ``shown``
    ``(B, 5)`` (:data:`DESCRIPTIONS`), or "" where ``empty``. ``fillers`` (per image: None or a
    word of :func:`filler_words` and where it goes, a fraction of the caption's length)."""
    out = []
    fillers = fillers or [None] * len(index)
    rows = zip(index.tolist(), template.tolist(), shown.tolist(), empty.tolist(), fillers)
    for i, j, axes, blank, filler in rows:
        if blank:
            out.append("")
            continue
        words = [pair[w] for pair, w, on in zip(DESCRIPTIONS, data.words[i].tolist(), axes) if on]
        digit = None if data.generic[i] else int(data.digits[i])
        text = caption(digit, WORLD_TEMPLATES[j], words)
        if filler is not None:
            word, where = filler
            parts = text.split()
            at = min(int(where * (len(parts) + 1)), len(parts))
            text = " ".join([*parts[:at], word, *parts[at:]])
        out.append(text)
    return out


@dataclass
class WorldTraining:
    """How the world is trained (lengths in optimiser steps)."""

    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    n_images: int = 10000
    held_out: int = 7
    uncond_fraction: float = 0.2  # of the generic-caption images: captioned ""
    generic_fraction: float = 0.5
    # Each appearance word (grain, colour) is in an image's caption with this probability, drawn
    # per step. 0: captions name the digit only, and no token can steer a style (the UNet never
    # saw text that varied with it; measured: Textual Inversion's style rate 0.00 -> 0.03).
    appearance_fraction: float = 0.5
    # Each shape word (loop, weight, base) is in a caption with this probability, drawn per step,
    # for every image (the held-out digit's too: they are measured, not given per digit).
    shape_fraction: float = 0.0
    # A caption carries one filler word (:func:`filler_words`, anywhere in it) with this probability.
    filler_fraction: float = 0.0
    x0_weight_max: float = 50.0  # the loss weight max(1, 1/SNR) is clipped here
    # After the warm-up, cosine decay to this fraction of lr. 1 (constant): the world learns to
    # listen to its captions late in a short run, and a decayed rate stops that (named-digit
    # rate 0.28 constant, 0.11 decayed to 0, in the bench's 1,500 steps).
    min_lr_ratio: float = 1.0
    seed: int = 0


@torch.no_grad()
def encode_images(sd: StableDiffusion, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """The scaled latents (the posterior means times ``scaling_factor``) of uint8 ``images``."""
    x = images.float() / 127.5 - 1.0
    means = [sd.vae.encode(x[k : k + batch]).latent_dist.mean for k in range(0, len(x), batch)]
    return torch.cat(means) * sd.config.scaling_factor


@torch.no_grad()
def through_autoencoder(sd: StableDiffusion, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """uint8 ``images`` as the world can draw them: encoded and decoded by its autoencoder (with
    two levels, the 2x2 means repeated 2x2). The graders learn from these: a style classifier
    trained on the full 28x28 pixels misjudged 27% of real images seen at the world's resolution."""
    latents = encode_images(sd, images, batch)
    return to_uint8(decode_latents(sd, latents, batch))


def train_world(
    sd: StableDiffusion,
    out_dir: str | Path,
    opts: WorldTraining,
    device: str = "cpu",
    on_sample: Callable[[nn.Module, int], None] | None = None,
    sample_every: int = 0,
) -> None:
    """Train ``sd``'s UNet on the captioned digits; the EMA weights end in ``sd``.

    The text encoder stays frozen, as SD's CLIP was while SD was trained (trained here from
    scratch for minutes, it collapses every caption to nearly the same states). The run lives in
    ``out_dir`` (``checkpoint.pt``, ``metrics.jsonl``; an interrupted run resumes). Captions are
    drawn per step (:func:`world_captions`): a named template for a named image, a generic
    template (or, with probability ``uncond_fraction``, the empty caption) for a generic one, each
    with the image's appearance words at ``appearance_fraction``, its shape words at
    ``shape_fraction`` and a filler word at ``filler_fraction``.
    ``on_sample(ema_unet, step)`` is called every ``sample_every`` steps and at the end.
    """
    data = world_data(opts.n_images, opts.held_out, opts.seed, opts.generic_fraction)
    sd.text_encoder.eval().requires_grad_(False).to(device)
    x_all = encode_images(sd, data.images)
    abar = sd.schedule.alpha_bar.float()
    fillers = filler_words(sd.tokenizer)
    fractions = torch.tensor([opts.appearance_fraction] * len(APPEARANCE_WORDS)
                             + [opts.shape_fraction] * len(SHAPE_WORDS))  # fmt: skip

    def next_batch(generator: torch.Generator) -> dict[str, torch.Tensor]:
        b = opts.batch_size
        i = torch.randint(len(x_all), (b,), generator=generator)
        j = torch.randint(len(WORLD_TEMPLATES), (b,), generator=generator)
        shown = torch.rand(b, len(DESCRIPTIONS), generator=generator) < fractions
        empty = data.generic[i] & (torch.rand(b, generator=generator) < opts.uncond_fraction)
        has = (torch.rand(b, generator=generator) < opts.filler_fraction).tolist()
        word = torch.randint(len(fillers), (b,), generator=generator).tolist()
        where = torch.rand(b, generator=generator).tolist()
        extra = [(fillers[w], p) if h else None for h, w, p in zip(has, word, where)]
        return {"x": x_all[i], "cond": encode_text(sd, world_captions(data, i, j, shown, empty, extra))}

    def loss_fn(unet: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        x0 = batch["x"]
        t = torch.randint(0, len(abar), (len(x0),), generator=generator)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = sd.schedule.add_noise(x0, noise, t.to(x0.device))
        pred = unet(x_t, t.to(x0.device), encoder_hidden_states=batch["cond"], return_dict=False)[0]
        per_sample = (pred.float() - noise).pow(2).flatten(1).mean(1)
        # An epsilon model, as SD's; its error weighted like an x0 error (1 / SNR) at high noise,
        # where only the caption can tell what to draw: plain epsilon-MSE leaves that band almost
        # weightless, and a small world then learns to ignore its captions.
        weight = ((1.0 - abar[t]) / abar[t]).clamp(1.0, opts.x0_weight_max).to(x0.device)
        return (weight * per_sample).sum() / weight.sum()

    sd.unet.train().requires_grad_(True)
    ckpt = Path(out_dir) / "checkpoint.pt"
    cfg = TrainConfig(out_dir=Path(out_dir), steps=opts.steps, batch_size=opts.batch_size, lr=opts.lr,
                      warmup_steps=min(100, opts.steps // 10), min_lr_ratio=opts.min_lr_ratio,
                      grad_clip=1.0, ema_decay=0.995, sample_every=sample_every,
                      log_every=max(1, min(100, opts.steps // 10)), ckpt_every=max(1, opts.steps // 4),
                      seed=opts.seed, mixed_precision=False, resume=ckpt.is_file(),
                      overwrite=not ckpt.is_file(),  # a run killed before its first checkpoint
                      device=device)  # fmt: skip
    trained = train(sd.unet, loss_fn, next_batch, cfg, on_sample=on_sample, config={"world": opts.__dict__})
    sd.unet.load_state_dict(trained.state_dict())
    sd.unet.eval().requires_grad_(False)


def save_world(sd: StableDiffusion, folder: str | Path) -> Path:
    """Write the world as a diffusers folder (what ``PB3/train.py --sd-ckpt`` and inference load)."""
    return save_diffusers_folder(sd, folder)
