"""The world's networks: SD v1's classes, small, on 28x28 digits (:func:`world_config`), the built
pixel autoencoder (:func:`pixel_autoencoder`), the untrained world (:func:`build_world`) and the
images as its autoencoder sees them (:func:`encode_images`, :func:`through_autoencoder`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from diffusers.models.resnet import ResnetBlock2D
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel

from dlcv.clip_tokenizer import offline_clip_tokenizer
from dlcv.io.images import to_uint8
from dlcv.stable_diffusion.config import SD_V1_TEXT_ENCODER, SD_V1_UNET, SD_V1_VAE, SDConfig
from dlcv.stable_diffusion.generation import decode_latents
from dlcv.stable_diffusion.loading import StableDiffusion, quiet_diffusers

SIZE = 28  # the images' height and width
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
