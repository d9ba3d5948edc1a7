"""Textual Inversion on Stable Diffusion v1: learn the input embedding of a new placeholder token.

Gal et al., "An Image is Worth One Word" (ICLR 2023), Eq. 2: with the whole model
frozen, find the embedding ``v*`` of a placeholder ``S*`` that minimises the latent
diffusion loss ``E_{z, y, eps, t} || eps - eps_theta(z_t, t, c_theta(y)) ||^2`` over
captions ``y`` built from templates holding ``S*``.

How it is done here:

* the token (``vectors`` entries ``tok, tok_1, ...`` for a multi-vector token) is added
  to the tokenizer and the text encoder's table with
  :func:`~dlcv.stable_diffusion.embeddings.add_embeddings`, initialised from an init
  word;
* the only trainable tensor is :attr:`TextualInversion.vectors`, an fp32 ``(vectors, D)``
  parameter. A forward hook on the frozen token-embedding table puts those vectors in
  place of the placeholder rows, so the text encoder runs on every step (its input
  changes) while the table itself is never written during training: every other row
  stays identical to the bit, and AdamW keeps state for ``vectors`` only. When training
  ends, :meth:`TextualInversion.merge` writes the vectors into the placeholder rows;
* the training images' latents are encoded once (:mod:`dlcv.stable_diffusion.ti_data`);
  each step draws latents from the stored posteriors, a timestep and noise, and applies
  the core's :func:`~dlcv.diffusion.diffusion_loss` on SD's scaled-linear schedule;
* on CUDA with mixed precision the frozen UNet holds half-precision weights and the step
  runs under the trainer's autocast, in the format of the project's precision rule
  (:mod:`dlcv.runtime`: bf16 from compute capability 8.0, fp16 below, where the trainer
  scales the loss with a GradScaler), attention through PyTorch's SDPA; the embeddings,
  the text encoder's weights and the loss stay fp32. The CPU path is fp32. When the GPU's
  free memory is short, gradient checkpointing (then sliced attention) is switched on by
  itself (:mod:`dlcv.stable_diffusion.memory`);
* validation images use the sampler hw2_3.sh uses (DPM-Solver++ 20 steps by default), so
  what is watched during training is what is graded.

The result is saved as diffusers' ``learned_embeds.safetensors``: ``{token: (vectors, D)}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlcv.cli import ArgumentError, UserError
from dlcv.diffusion import NoiseSchedule, diffusion_loss
from dlcv.io.checkpoint import load_checkpoint, save_weights
from dlcv.io.images import save_grid
from dlcv.runtime import cuda_backends
from dlcv.stable_diffusion.embeddings import (
    LEARNED_EMBEDS,
    add_embeddings,
    expand_placeholders,
    placeholder_names,
)
from dlcv.stable_diffusion.generation import (
    DEFAULT_SOLVER,
    DEFAULT_STEPS,
    SamplingOptions,
    generate,
    prepare_for_inference,
)
from dlcv.stable_diffusion.loading import StableDiffusion
from dlcv.stable_diffusion.memory import auto_memory_plan
from dlcv.stable_diffusion.ti_data import (
    VALIDATION_PROMPTS,
    Augmentation,
    augmented_views,
    encode_views,
    templates,
    tokenize_captions,
)
from dlcv.training import TrainConfig, distributed, train
from dlcv.training.trainer import CHECKPOINT_NAME


@dataclass
class TIConfig:
    """What to learn and how to check it (optimisation settings live in :class:`TrainConfig`).

    ``validate_images`` images per validation prompt (0: none) with ``validate_steps`` steps
    of ``validate_solver`` (hw2_3.sh's defaults) at guidance ``guidance``; ``validate_prompts`` default to
    :data:`~dlcv.stable_diffusion.ti_data.VALIDATION_PROMPTS` of the kind ("{}" is the token).
    """

    token: str
    init_word: str
    vectors: int = 1
    kind: str = "object"
    augmentation: Augmentation = field(default_factory=Augmentation)
    validate_images: int = 4
    validate_steps: int = DEFAULT_STEPS
    validate_solver: str = DEFAULT_SOLVER
    guidance: float = 7.5
    validate_prompts: Sequence[str] | None = None
    gradient_checkpointing: bool = False

    def check(self, sd: StableDiffusion) -> None:
        templates(self.kind)
        self.augmentation.check()
        if self.vectors < 1:
            raise ArgumentError(f"`vectors` must be >= 1, got {self.vectors}")
        if self.augmentation.resolution % sd.config.vae_scale:
            raise ArgumentError(
                f"`resolution` must be a multiple of {sd.config.vae_scale}, "
                f"got {self.augmentation.resolution}"
            )
        if self.validate_images < 0 or self.validate_steps < 1:
            raise ArgumentError("`validate_images` must be >= 0 and `validate_steps` >= 1")
        self.sampling().check(sd)
        for prompt in self.validate_prompts or ():
            if "{}" not in prompt:
                raise UserError(f"validation prompt {prompt!r} needs '{{}}' where the token goes")

    def sampling(self) -> SamplingOptions:
        """How the validation images are sampled."""
        return SamplingOptions(
            steps=self.validate_steps,
            guidance=self.guidance,
            solver=self.validate_solver,
            resolution=self.augmentation.resolution,
        )

    def record(self) -> dict[str, Any]:
        """Plain data for the checkpoint and the embedding file's metadata."""
        out = asdict(self)
        out["validate_prompts"] = list(self.validate_prompts or [])
        return out


def init_vectors(sd: StableDiffusion, init_word: str, vectors: int = 1) -> torch.Tensor:
    """Initial embedding ``(vectors, D)`` (fp32, CPU) from the token embeddings of ``init_word``.

    One token (the paper's choice, e.g. "dog"): copied into every vector. As many tokens
    as ``vectors``: one each. Otherwise (e.g. "David Revoy" for one vector): their mean,
    rescaled to their average norm so that it looks like a token embedding.
    """
    ids = sd.tokenizer(init_word, add_special_tokens=False).input_ids
    if not init_word.strip() or not ids:
        raise ArgumentError(
            f"`init_word` {init_word!r} gives no tokens; pass a word such as 'dog' or 'painting'"
        )
    table = sd.text_encoder.get_input_embeddings().weight.detach()
    rows = table[torch.tensor(ids, device=table.device)].float().cpu()
    if len(ids) == 1:
        return rows.expand(vectors, -1).clone()
    if len(ids) == vectors:
        return rows.clone()
    mean = rows.mean(0)
    mean = mean * (rows.norm(dim=1).mean() / mean.norm().clamp_min(1e-12))
    return mean.expand(vectors, -1).clone()


def add_placeholder(sd: StableDiffusion, token: str, init: torch.Tensor) -> list[int]:
    """Add ``token`` (``len(init)`` vectors) to ``sd``'s tokenizer and text encoder; return its ids."""
    return add_embeddings(sd.tokenizer, sd.text_encoder, {token: init}, source="--token")[token]


class TextualInversion(nn.Module):
    """The trainable part of Textual Inversion: ``vectors`` (fp32), wired into a frozen SD model.

    Only :attr:`vectors` is registered (so the trainer's checkpoint, optimiser and DDP see
    nothing else); the SD networks are referenced, not owned, and must already sit on
    the training device. ``forward(z_t, t, ids)`` is the UNet's noise prediction for the
    captions ``ids`` with the current placeholder vectors.
    """

    def __init__(self, sd: StableDiffusion, token: str, ids: Sequence[int], init: torch.Tensor) -> None:
        super().__init__()
        table = sd.text_encoder.get_input_embeddings()
        device = table.weight.device
        self.vectors = nn.Parameter(init.detach().to(device, torch.float32).clone())
        self.sd = sd  # a dataclass, not a Module: not part of state_dict() / parameters()
        self.token = token
        self.ids = list(ids)
        self._slot = torch.full((table.weight.shape[0],), -1, dtype=torch.long, device=device)
        self._slot[torch.tensor(self.ids, device=device)] = torch.arange(len(self.ids), device=device)
        self._hook = table.register_forward_hook(self._substitute)

    def _substitute(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        """Forward hook of the token table: placeholder positions take :attr:`vectors`."""
        slot = self._slot.to(output.device)[args[0]]
        rows = self.vectors.to(output.dtype)[slot.clamp_min(0)]
        return torch.where((slot >= 0).unsqueeze(-1), rows, output)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """CLIP's last hidden states for the token ids, with the current placeholder vectors."""
        return self.sd.text_encoder(ids).last_hidden_state

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        unet = self.sd.unet
        if z_t.device.type == "cuda":
            z_t = z_t.contiguous(memory_format=torch.channels_last)
        cond = self.encode(ids).to(unet.dtype)
        return unet(z_t.to(unet.dtype), t, encoder_hidden_states=cond, return_dict=False)[0].float()

    def learned(self) -> dict[str, torch.Tensor]:
        """``{token: (vectors, D)}`` fp32 on the CPU, diffusers' ``learned_embeds`` layout."""
        return {self.token: self.vectors.detach().float().cpu().contiguous()}

    @torch.no_grad()
    def merge(self) -> None:
        """Write the vectors into the placeholder rows and remove the hook (the model is plain again)."""
        self._hook.remove()
        table = self.sd.text_encoder.get_input_embeddings().weight
        rows = torch.tensor(self.ids, device=table.device)
        table[rows] = self.vectors.detach().to(table.device, table.dtype)


def save_learned_embeds(
    embeds: dict[str, torch.Tensor], out_dir: str | Path, meta: dict[str, Any] | None = None
) -> Path:
    """Write ``out_dir/learned_embeds.safetensors`` atomically (readable by diffusers and our loader)."""
    return save_weights(embeds, Path(out_dir) / LEARNED_EMBEDS, config=meta)


def _check_resume(cfg: TrainConfig, ti: TIConfig) -> None:
    """Refuse to resume a checkpoint of another token or vector count (a clear line, not a traceback)."""
    path = Path(cfg.out_dir) / CHECKPOINT_NAME
    if not (cfg.resume and path.is_file()):
        return
    before = load_checkpoint(path).get("config", {}).get("textual_inversion", {})
    for key in ("token", "vectors"):
        if key in before and before[key] != getattr(ti, key):
            raise ArgumentError(
                f"`resume`: {path} trained {key} {before[key]!r}, not {getattr(ti, key)!r}; "
                "use the same settings or another output folder"
            )


def textual_inversion_loss(
    net: nn.Module,
    batch: dict[str, torch.Tensor],
    generator: torch.Generator,
    schedule: NoiseSchedule,
    scale: float,
) -> torch.Tensor:
    """The loss of one training step (the paper's Eq. 2): what the trainer minimises.

    ``batch`` holds the views' posterior ``"mean"`` / ``"std"`` and the captions' token
    ``"ids"``; ``net(z_t, t, ids)`` is :class:`TextualInversion`. From ``generator`` (CPU)
    are drawn, in this order: the posterior noise (``z0 = (mean + std * e) * scale``), then
    the timesteps and the diffusion noise (:func:`~dlcv.diffusion.diffusion_loss`: uniform
    ``t``, ``z_t = add_noise(z0, noise, t)``, MSE between the predicted and the true noise).
    """
    eps = torch.randn(batch["mean"].shape, generator=generator).to(batch["mean"].device)
    z0 = (batch["mean"] + batch["std"] * eps) * scale  # a sample of q(z | x), SD's scaling
    return diffusion_loss(lambda z, t: net(z, t, batch["ids"]), z0, schedule, generator)


def prepare_for_training(
    sd: StableDiffusion, device: torch.device, dtype: torch.dtype = torch.float32
) -> None:
    """Frozen networks on ``device`` with SDPA attention, the UNet's weights in ``dtype``
    (the trainer's autocast dtype: :meth:`~dlcv.training.TrainConfig.autocast_dtype`).

    The text encoder stays fp32 so that its placeholder rows are fp32 master weights.
    """
    prepare_for_inference(sd, device)
    sd.text_encoder.to(torch.float32)
    sd.unet.to(dtype)


def train_textual_inversion(
    sd: StableDiffusion,
    images: Sequence[torch.Tensor],
    ti: TIConfig,
    cfg: TrainConfig,
    base_model: str = "",
    device: torch.device | None = None,
) -> torch.Tensor:
    """Learn ``ti.token`` from ``images`` (uint8 ``(3, H, W)``); return its vectors ``(n, D)``.

    Writes to ``cfg.out_dir``: ``checkpoint.pt`` (resumable), ``learned_embeds.safetensors``
    at each checkpoint, ``metrics.jsonl`` and ``samples/step_*.png`` (validation images,
    one row per prompt). ``sd`` gains the token (its learned vectors merged into the
    table) and ends on the training device; with mixed precision on CUDA its UNet is in the
    half type of the precision rule.
    Pass ``cfg.ema_decay=None``: an EMA of the embedding is not part of the method.
    ``device`` is the job's training device, resolved once by the caller
    (:func:`~dlcv.training.distributed.setup`, which also names it in ``cfg.device``); by
    default it is resolved here from ``cfg.device``.
    """
    ti.check(sd)
    if not images:
        raise UserError("no training images")
    device = device or distributed.setup(cfg.device).device  # the trainer picks the same one
    with cuda_backends(device):  # TF32 and cuDNN autotuning for this job only, restored after
        prepare_for_training(sd, device, cfg.autocast_dtype(device))
        _check_resume(cfg, ti)
        options = ti.sampling()
        plan = auto_memory_plan(sd, cfg.batch_size, ti.augmentation.resolution, options, training=True)
        checkpointing = ti.gradient_checkpointing or (plan is not None and plan.gradient_checkpointing)

        init = init_vectors(sd, ti.init_word, ti.vectors)
        ids = add_placeholder(sd, ti.token, init)
        counts = {ti.token: ti.vectors}
        captions = [expand_placeholders(t.format(ti.token), counts) for t in templates(ti.kind)]
        caption_ids = tokenize_captions(sd.tokenizer, captions)
        if not all(set(ids) <= set(row.tolist()) for row in caption_ids):
            raise UserError(
                f"the token {ti.token!r} does not fit in CLIP's 77-token prompts; use fewer --vectors"
            )

        # The VAE runs here, once: posterior mean and std of every augmented view.
        views = augmented_views(images, ti.augmentation, seed=cfg.seed)
        mean, std = encode_views(sd.vae, views)
        del views
        scale = sd.config.scaling_factor
        schedule = sd.schedule
        model = TextualInversion(sd, ti.token, ids, init)
        if checkpointing:
            sd.unet.enable_gradient_checkpointing()

        def next_batch(generator: torch.Generator) -> dict[str, torch.Tensor]:
            i = torch.randint(len(mean), (cfg.batch_size,), generator=generator)
            j = torch.randint(len(caption_ids), (cfg.batch_size,), generator=generator)
            return {"mean": mean[i], "std": std[i], "ids": caption_ids[j]}

        def loss_fn(
            net: nn.Module, batch: dict[str, torch.Tensor], generator: torch.Generator
        ) -> torch.Tensor:
            return textual_inversion_loss(net, batch, generator, schedule, scale)

        prompts = list(ti.validate_prompts or VALIDATION_PROMPTS[ti.kind])

        def on_sample(_model: nn.Module, step: int) -> None:
            if not ti.validate_images:
                return
            rows = [
                generate(
                    sd,
                    expand_placeholders(p.format(ti.token), counts),
                    ti.validate_images,
                    options,
                    seed=cfg.seed,
                    batch_size=ti.validate_images,
                )
                for p in prompts
            ]
            save_grid(
                torch.cat(rows),
                Path(cfg.out_dir) / "samples" / f"step_{step:07d}.png",
                nrow=ti.validate_images,
            )

        meta = {
            "textual_inversion": ti.record(),
            "base_model": base_model,
            "tokens": placeholder_names(ti.token, ti.vectors),
        }
        try:
            train(
                model,
                loss_fn,
                next_batch,
                cfg,
                params=[model.vectors],
                on_sample=on_sample,
                export=lambda m, out, step: save_learned_embeds(m.learned(), out, meta),
                config=meta,
            )
        finally:
            model.merge()
            if checkpointing:
                sd.unet.disable_gradient_checkpointing()
        return model.learned()[ti.token]
