"""Text-to-image sampling with Stable Diffusion v1: text encoding, guided sampling in latent space, decoding.

Stable Diffusion (Rombach et al., CVPR 2022) runs the diffusion in the latent space of
its autoencoder: initial latents ``z_T ~ N(0, I)`` of shape ``(4, H/8, W/8)`` are
denoised by the text-conditioned UNet with classifier-free guidance (Ho & Salimans,
2021), then decoded as ``x = D(z_0 / 0.18215)``. Sampling runs through the core's one batched
driver (:func:`~dlcv.diffusion.iter_sample_batches`) in SD v1's timestep convention
(:data:`~dlcv.diffusion.SD_V1`), with two of its samplers:

* ``dpm++`` (the default, :data:`DEFAULT_SOLVER` with :data:`DEFAULT_STEPS` = 20 steps):
  DPM-Solver++(2M) (Lu et al., 2022), :func:`~dlcv.diffusion.dpmpp_2m_sample`, on
  diffusers' "leading" timesteps for it (:func:`~dlcv.diffusion.dpm_solver_timesteps`,
  ``941, 894, ..., 48`` for 20 steps), the last step first order and straight to ``x_0``
  (``alpha_bar_final=1``, diffusers' ``final_sigmas_type="zero"``): the same images
  as diffusers' ``DPMSolverMultistepScheduler`` in SD's configuration;
* ``ddim``: DDIM (Song et al., 2021), :func:`~dlcv.diffusion.ddim_sample`, in SD's
  convention (timesteps ``981, 961, ..., 1`` for 50 steps, last ``alpha_bar_prev =
  alpha_bar[0]``, no clamping of ``x0``).

Both take ``eta`` (default 0, deterministic); ``eta > 0`` adds fresh noise each step (DDIM's
``eta``; SDE-DPM-Solver++(2M) for ``dpm++``), drawn per image from a generator seeded by the
sampling seed, so image ``i`` is the same whatever the batch size.

The prompt's and the empty prompt's CLIP embeddings are computed once per prompt and
broadcast over the batch; both guidance halves go through the UNet in one forward.
Initial latents come from a CPU generator, so a seed gives the same images on the CPU
and on a GPU, and image ``i`` of a prompt does not depend on the batch size. The
networks' dtype follows the project's precision rule (:mod:`dlcv.runtime`: bf16 from
compute capability 8.0, fp16 below, fp32 on the CPU); on CUDA they run with channels-last
memory and PyTorch's SDPA attention (diffusers' ``AttnProcessor2_0``). Latents, guidance
and the sampler's updates stay fp32; a half-precision VAE decode that overflows (NaN or
inf) is redone in fp32.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from dlcv.cli import ArgumentError, UserError, prepare_out_dir, refuse_links, warn
from dlcv.diffusion import SD_V1, EpsFactory, classifier_free_guidance, iter_sample_batches, sample_batches
from dlcv.diffusion.samplers import EpsFn
from dlcv.io.images import save_png, to_uint8
from dlcv.runtime import autocast

if TYPE_CHECKING:  # diffusers and transformers load with the model, not with this module
    from dlcv.stable_diffusion.loading import StableDiffusion

SOLVERS = ("ddim", "dpm++")
#: The sampler of hw2_3.sh / PB3/inference.py and of Textual Inversion's validation images:
#: DPM-Solver++(2M) with 20 steps, 40 UNet evaluations per image with guidance (the README's
#: time arithmetic for the course's 10 minutes). DDIM 50 is ``--solver ddim --steps 50``.
DEFAULT_SOLVER = "dpm++"
DEFAULT_STEPS = 20
#: UNet evaluations per second (512 px, fp16) on the course's card, an RTX 2080 Ti, by arithmetic
#: from published figures (``bench/sd_unet_flops.py`` -> ``docs/results/sd_unet_flops.json``, whose
#: rounded figure this must equal; the sources in :mod:`dlcv_bench.sd_speed`): the card's 53.8 TFLOPS
#: of fp16 tensor math with fp32 accumulate (Turing whitepaper, reference clock), times the 17% of
#: peak SD's UNet reaches on a Turing T4 in diffusers' published benchmark, over one evaluation's
#: 803 GFLOPs. What the defaults are sized with; not a measurement on a 2080 Ti.
RTX_2080_TI_UNET_EVALS_PER_S = 11.4


def unet_evaluations(n_images: int, steps: int, guidance: float) -> int:
    """How many latents go through the UNet to sample ``n_images``: ``steps`` per image, twice
    with classifier-free guidance (both halves; guidance 0 or 1 needs one)."""
    return n_images * steps * (1 if guidance in (0.0, 1.0) else 2)


@dataclass
class SamplingOptions:
    """How to sample: ``steps`` steps of ``solver`` (DPM-Solver++ or DDIM) at guidance ``guidance``.

    ``resolution`` (pixels, a multiple of the VAE's 8) defaults to the model's
    ``config.resolution`` (512 for SD v1). ``decode_batch`` bounds how many images the
    VAE decodes at once (its 512x512 activations are the largest in the model).
    """

    steps: int = DEFAULT_STEPS
    guidance: float = 7.5
    eta: float = 0.0
    resolution: int | None = None
    solver: str = DEFAULT_SOLVER
    decode_batch: int = 4

    def check_numbers(self) -> None:
        """What can be checked without the model: the solver, a finite guidance, eta >= 0, steps >= 1."""
        if self.solver not in SOLVERS:
            raise ArgumentError(f"`solver` must be one of {', '.join(SOLVERS)}, got {self.solver!r}")
        if not math.isfinite(self.guidance):
            raise ArgumentError(f"`guidance` must be a finite number, got {self.guidance}")
        if not (math.isfinite(self.eta) and self.eta >= 0):
            raise ArgumentError(f"`eta` must be a number >= 0, got {self.eta}")
        if self.steps < 1:
            raise ArgumentError(f"`steps` must be at least 1, got {self.steps}")

    def check(self, sd: StableDiffusion) -> int:
        """Validate against ``sd``; return the resolution to use."""
        self.check_numbers()
        try:
            self.timesteps(sd.config.num_train_timesteps)
        except ValueError as err:
            raise ArgumentError(f"`steps` {self.steps} with `solver` {self.solver}: {err}") from None
        res = self.resolution or sd.config.resolution
        if res <= 0 or res % sd.config.vae_scale:
            raise ArgumentError(
                f"`resolution` must be a positive multiple of {sd.config.vae_scale}, got {res}"
            )
        return res

    def timesteps(self, num_train_timesteps: int) -> list[int]:
        """The timesteps the solver visits (SD v1's convention, :data:`~dlcv.diffusion.SD_V1`)."""
        return SD_V1.timesteps(self.solver, self.steps, num_train_timesteps)

    def driver_options(self, sd: StableDiffusion) -> dict[str, object]:
        """The keyword options of :func:`~dlcv.diffusion.iter_sample_batches` for ``sd``: this
        solver, steps and eta in SD v1's convention, ``x0`` not clamped, on ``sd``'s device."""
        cuda = sd.device.type == "cuda"  # the UNet's convolutions run channels-last there
        return {
            "sampler": self.solver,
            "steps": self.steps,
            "eta": self.eta,
            "clip_x0": False,
            "convention": SD_V1,
            "device": sd.device,
            "channels_last": cuda,
        }


def prepare_for_inference(sd: StableDiffusion, device: torch.device) -> StableDiffusion:
    """Eval mode, SDPA attention everywhere and, on CUDA, channels-last convolutions."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    sd.to(device)
    for net in (sd.unet, sd.vae):
        net.eval().requires_grad_(False)
        net.set_attn_processor(AttnProcessor2_0())
        if device.type == "cuda":
            net.to(memory_format=torch.channels_last)
    sd.text_encoder.eval().requires_grad_(False)
    return sd


def _autocast(sd: StableDiffusion) -> contextlib.AbstractContextManager:
    """Autocast to the UNet weights' dtype when it is a half type (norms and softmax stay fp32)."""
    return autocast(sd.device, sd.dtype)


@torch.no_grad()
def encode_text(sd: StableDiffusion, prompts: Sequence[str]) -> torch.Tensor:
    """CLIP's last hidden states ``(N, 77, D)`` for ``prompts`` (padded with ``<|endoftext|>``).

    This is SD v1's conditioning (``FrozenCLIPEmbedder``): longer prompts are truncated
    to 77 tokens.
    """
    ids = sd.tokenizer(
        list(prompts),
        padding="max_length",
        max_length=sd.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(sd.device)
    with _autocast(sd):
        return sd.text_encoder(ids).last_hidden_state


def initial_latents(sd: StableDiffusion, n: int, resolution: int, seed: int) -> torch.Tensor:
    """Latents ``z_T`` of the ``n`` images of a prompt, drawn from one CPU generator seeded by ``seed``
    (fp32, CPU): the same on every device, and the driver batches them without changing them."""
    size = resolution // sd.config.vae_scale
    shape = (n, sd.config.latent_channels, size, size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _unet(sd: StableDiffusion) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    def model(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        with _autocast(sd):
            return sd.unet(x, t, encoder_hidden_states=c, return_dict=False)[0].float()

    return model


def text_eps(sd: StableDiffusion, cond: torch.Tensor, uncond: torch.Tensor, guidance: float) -> EpsFactory:
    """The driver's eps factory for text prompts: ``cond`` / ``uncond`` text embeddings (batch 1,
    broadcast, or one row per item of the job) bound into the guided UNet."""

    def make_eps_fn(index: torch.Tensor) -> EpsFn:
        c = cond.expand(len(index), *cond.shape[1:]) if cond.shape[0] == 1 else cond[index.to(cond.device)]
        u = uncond if uncond.shape[0] == 1 else uncond[index.to(uncond.device)]
        return classifier_free_guidance(_unet(sd), c, u, guidance)

    return make_eps_fn


def denoise(
    sd: StableDiffusion,
    latents: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor,
    options: SamplingOptions,
    progress: bool = False,
    seed: int = 0,
) -> torch.Tensor:
    """Run the guided reverse process from ``latents`` (``z_T``, fp32) to ``z_0``, all at once.

    ``cond`` / ``uncond`` are text embeddings of batch 1 or ``len(latents)``; ``seed`` seeds the
    fresh noise of ``eta > 0``. The solvers and their timesteps: the module docstring.
    """
    return sample_batches(
        text_eps(sd, cond, uncond, options.guidance),
        latents,
        sd.schedule,
        seed=seed,
        progress=progress,
        **options.driver_options(sd),
    )


def _decode(sd: StableDiffusion, latents: torch.Tensor) -> torch.Tensor:
    """One VAE decode in the VAE's own dtype, float32 images on the CPU."""
    dtype = next(sd.vae.parameters()).dtype
    z = (latents / sd.config.scaling_factor).to(sd.device, dtype)
    if sd.device.type == "cuda":
        z = z.contiguous(memory_format=torch.channels_last)
    with autocast(sd.device, dtype):
        return sd.vae.decode(z, return_dict=False)[0].float().cpu()


@contextlib.contextmanager
def vae_in_fp32(sd: StableDiffusion) -> Iterator[None]:
    """The VAE in fp32 for the duration (diffusers' "upcast VAE"), back to its dtype afterwards."""
    from dlcv.stable_diffusion.loading import quiet_diffusers

    dtype = next(sd.vae.parameters()).dtype
    with quiet_diffusers():
        sd.vae.to(torch.float32)
    try:
        yield
    finally:
        with quiet_diffusers():
            sd.vae.to(dtype)


@torch.no_grad()
def decode_latents(sd: StableDiffusion, latents: torch.Tensor, batch: int = 4) -> torch.Tensor:
    """Decode ``z_0`` to float images in ``[-1, 1]`` (not clamped), ``batch`` at a time, on the CPU.

    A half-precision decode is checked: a batch with NaN or inf in its output (fp16 tops
    out at 65504, and the decoder's last layers can exceed it) is decoded again with the
    VAE in fp32, with one warning per run.
    """
    out = []
    for chunk in latents.split(max(1, batch)):
        images = _decode(sd, chunk)
        if next(sd.vae.parameters()).dtype != torch.float32 and not bool(torch.isfinite(images).all()):
            if not _WARNED["vae"]:
                warn("the half-precision VAE decode overflowed (NaN/inf): decoding again in fp32")
                _WARNED["vae"] = True
            with vae_in_fp32(sd):
                images = _decode(sd, chunk)
        out.append(images)
    return torch.cat(out)


_WARNED = {"vae": False}


def generate_batches(
    sd: StableDiffusion,
    prompt: str,
    n_images: int,
    options: SamplingOptions | None = None,
    seed: int = 0,
    batch_size: int = 4,
    negative_prompt: str = "",
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(index of the first image, uint8 images (B, 3, H, W) on the CPU)`` for one prompt.

    The prompt and the unconditional prompt (``negative_prompt``, default ``""``) are
    encoded once; the driver (:func:`~dlcv.diffusion.iter_sample_batches`) runs the images
    ``batch_size`` at a time from the latents of :func:`initial_latents`, the VAE decoding each
    batch; ``progress(k)`` is called after each batch of ``k`` images.
    """
    options = options or SamplingOptions()
    resolution = options.check(sd)
    if n_images < 1 or batch_size < 1:
        raise ArgumentError(f"`n_images` and `batch_size` must be >= 1, got {n_images} and {batch_size}")
    cond, uncond = encode_text(sd, [prompt, negative_prompt]).chunk(2)
    batches = iter_sample_batches(
        text_eps(sd, cond, uncond, options.guidance),
        initial_latents(sd, n_images, resolution, seed),
        sd.schedule,
        batch_size=batch_size,
        seed=seed,
        **options.driver_options(sd),
        decode=lambda z: to_uint8(decode_latents(sd, z, options.decode_batch)),
    )
    for start, images in batches:
        if progress is not None:
            progress(len(images))
        yield start, images


def generate(
    sd: StableDiffusion,
    prompt: str,
    n_images: int = 1,
    options: SamplingOptions | None = None,
    seed: int = 0,
    batch_size: int = 4,
) -> torch.Tensor:
    """``n_images`` uint8 images ``(N, 3, H, W)`` for ``prompt`` (see :func:`generate_batches`)."""
    return torch.cat([imgs for _, imgs in generate_batches(sd, prompt, n_images, options, seed, batch_size)])


# --- the course's prompt file and output layout ------------------------------------------------

PLACEHOLDER = re.compile(r"<(?!\|)[^<>\s]+>")  # <new1>, <cat-toy>; not CLIP's <|endoftext|>


def placeholders_in(text: str) -> list[str]:
    """The ``<...>`` placeholder tokens written in ``text``, in order of first appearance."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def image_names(n_images: int) -> list[str]:
    """``00.png .. 24.png`` for 25 images (more digits when needed)."""
    width = max(2, len(str(n_images - 1)))
    return [f"{i:0{width}d}.png" for i in range(n_images)]


def check_output_folder(folder: Path, n_images: int) -> None:
    """Refuse a folder holding other PNGs than the ones we would write (the grader counts them all),
    and one that cannot be created or written."""
    prepare_out_dir(folder, create=False)
    if not folder.is_dir():
        return
    ours = set(image_names(n_images))
    others = sorted(p.name for p in folder.glob("*.png") if p.name not in ours)
    if others:
        raise UserError(
            f"{folder} already holds {len(others)} other PNG file(s) (e.g. {others[0]}); the grader reads "
            f"every image there, so use an empty output folder"
        )


def check_output_folders(
    out_dir: str | Path, folders: Sequence[Path], n_images: int, what: str = "output folder"
) -> None:
    """The one check of a generation's outputs, before any slow work: ``out_dir`` (named ``what``)
    can be created and written, no folder on the way from it to each of ``folders`` is a link,
    and none holds other PNGs (:func:`check_output_folder`)."""
    prepare_out_dir(out_dir, what, create=False)
    refuse_links(out_dir, [Path(folder).relative_to(out_dir) for folder in folders], "output folder")
    for folder in folders:
        check_output_folder(folder, n_images)


def write_prompt_images(
    sd: StableDiffusion,
    jobs: Sequence[tuple[str, Path]],
    n_images: int,
    options: SamplingOptions,
    seed: int = 0,
    batch_size: int = 4,
    negative_prompt: str = "",
    progress: bool = True,
) -> list[Path]:
    """For each ``(prompt, folder)``, write ``n_images`` PNGs ``folder/00.png ..`` and return their paths.

    Every prompt uses the same seed, so its images do not depend on which other prompts run. The
    folders are checked first by :func:`check_output_folders` (the job does it before loading the
    model).
    """
    names = image_names(n_images)
    written: list[Path] = []
    with tqdm(total=len(jobs) * n_images, desc="images", unit="img", disable=not progress) as bar:
        for prompt, folder in jobs:
            bar.set_postfix_str(prompt[:40])
            prepare_out_dir(folder)
            batches = generate_batches(
                sd, prompt, n_images, options, seed, batch_size, negative_prompt, progress=bar.update
            )
            for start, images in batches:
                for i, image in enumerate(images, start):
                    written.append(save_png(image, folder / names[i]))
    return written
