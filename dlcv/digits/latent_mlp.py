"""Problem 1's CPU model: a class-conditional denoiser on the principal components of the digits.

The diffusion runs in a latent space, as Stable Diffusion's does (Rombach et al. 2022), but the
autoencoder is linear and fitted in closed form: the top ``components`` principal directions
of the training images (PCA). Because the basis is orthonormal, adding Gaussian noise to the
coefficients is exactly adding it to the image and projecting, so the forward process is the
pixel-space DDPM restricted to that subspace; ``decode`` maps coefficients back to images
(``mean + z B^T``). 256 components keep almost everything the digit graders look at (images
reconstructed from them are classified about as well as the originals), and a network on a
256-vector costs about a tenth of a convolutional UNet per image, so on a CPU it sees an order
of magnitude more images in the same time.

The denoiser is a residual MLP: ``h = W_in z``; then ``depth`` blocks of
``h + W_2 swish(W_1 (LN(h) (1 + scale) + shift))`` whose scale and shift come from the time
and class embedding (adaptive layer norm, as DiT's adaLN; Peebles & Xie 2023); ``W_out LN(h)``
(zero-initialised). ``forward(z, t, y)`` follows :class:`~dlcv.digits.unet.DigitUNet`:
``y`` in ``0 .. num_classes``, the last index being the null class of classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlcv.models.blocks import time_mlp


@dataclass
class DigitLatentMLPConfig:
    """Size of the latent space and of the denoiser."""

    type: str = "pca_mlp"
    image_size: int = 28
    in_channels: int = 3
    components: int = 256  # principal components kept: the latent's length
    width: int = 512
    depth: int = 4
    num_classes: int = 20

    def __post_init__(self) -> None:
        if self.type != "pca_mlp":
            raise ValueError(f"model.type must be pca_mlp for this model, got {self.type!r}")
        pixels = self.in_channels * self.image_size**2
        for name in ("components", "width", "depth", "num_classes", "image_size", "in_channels"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"model.{name} must be positive, got {getattr(self, name)}")
        if self.components > pixels:
            raise ValueError(f"model.components must be at most {pixels} (the pixels), got {self.components}")

    def to_dict(self) -> dict:
        return asdict(self)


class _Block(nn.Module):
    def __init__(self, width: int, emb: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.modulation = nn.Linear(emb, 2 * width)
        self.fc1 = nn.Linear(width, 2 * width)
        self.fc2 = nn.Linear(2 * width, width)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.modulation(emb).chunk(2, dim=-1)
        return h + self.fc2(F.silu(self.fc1(self.norm(h) * (1 + scale) + shift)))


class DigitLatentMLP(nn.Module):
    """Denoiser on PCA coefficients, with the basis (``pca_mean``, ``pca_basis``) as buffers."""

    def __init__(self, config: DigitLatentMLPConfig) -> None:
        super().__init__()
        self.config = config
        pixels = config.in_channels * config.image_size**2
        emb = 256
        self.register_buffer("pca_mean", torch.zeros(pixels))
        self.register_buffer("pca_basis", torch.eye(pixels, config.components))
        self.time = time_mlp(128, emb)
        self.class_embedding = nn.Embedding(config.num_classes + 1, emb)
        self.inp = nn.Linear(config.components, config.width)
        self.blocks = nn.ModuleList(_Block(config.width, emb) for _ in range(config.depth))
        self.out_norm = nn.LayerNorm(config.width)
        self.out = nn.Linear(config.width, config.components)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.components,)

    @torch.no_grad()
    def fit_basis(self, images: torch.Tensor, max_images: int = 20_000, seed: int = 0) -> float:
        """Fit the PCA on uint8 images ``(N, C, H, W)`` (a seeded sample of at most
        ``max_images``); returns the fraction of the pixel variance the components keep."""
        if len(images) > max_images:
            pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:max_images]
            images = images[pick]
        x = images.float().flatten(1) / 127.5 - 1.0
        mean = x.mean(0)
        centred = x - mean
        torch.manual_seed(seed)  # pca_lowrank's random projections
        _, s, v = torch.pca_lowrank(centred, q=self.config.components, center=False, niter=6)
        self.pca_mean.copy_(mean.to(self.pca_mean))
        self.pca_basis.copy_(v.to(self.pca_basis))
        return float(s.pow(2).sum() / centred.pow(2).sum())

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images in ``[-1, 1]`` ``(B, C, H, W)`` -> coefficients ``(B, components)``."""
        return (images.flatten(1).to(self.pca_basis) - self.pca_mean) @ self.pca_basis

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Coefficients ``(B, components)`` -> images ``(B, C, H, W)`` (not clamped)."""
        c, s = self.config.in_channels, self.config.image_size
        z = latents.to(self.pca_basis)
        return (z @ self.pca_basis.T + self.pca_mean).view(len(z), c, s, s)

    def clamp_x0(self, z0: torch.Tensor) -> torch.Tensor:
        """A predicted clean latent kept in the images' range: decoded, clamped to ``[-1, 1]``
        and encoded again (the samplers' ``clip_x0``; without it a few trajectories leave the
        data and decode to coloured noise)."""
        return self.encode(self.decode(z0).clamp(-1.0, 1.0))

    def forward(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        emb = F.silu(self.time(t) + self.class_embedding(y))
        h = self.inp(z)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(self.out_norm(h))
