"""Load CLIP offline, from a Hugging Face folder or an OpenAI ``.pt`` file, as one model type.

Where the weights are looked for is :mod:`dlcv.clip_eval.sources` (``--clip`` on the
command line). Every source becomes a transformers :class:`~transformers.CLIPModel`
(SDPA attention), wrapped in :class:`ClipModel`, whose encoders return unit-norm
float32 embeddings. OpenAI's files go through :mod:`dlcv.clip_eval.convert`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import CLIPModel, CLIPTokenizer

from dlcv.cli import ArgumentError, UserError
from dlcv.clip_eval.convert import openai_config, openai_to_hf_state_dict, read_openai_state_dict
from dlcv.clip_eval.sources import PRECISIONS, resolve_clip_source
from dlcv.clip_tokenizer import load_clip_tokenizer
from dlcv.runtime import resolve_dtype


@dataclass
class ClipModel:
    """A transformers CLIPModel with its tokenizer, device and dtype, and unit-norm encoders."""

    model: CLIPModel
    tokenizer: CLIPTokenizer
    device: torch.device
    dtype: torch.dtype
    source: str
    #: ``exp(logit_scale)`` read in float32 before any cast: the factor of
    #: ``logits_per_image`` (100 for OpenAI's CLIP).
    logit_scale: float

    @property
    def image_size(self) -> int:
        """Side of the square input image the vision tower expects (224 for ViT-B/32)."""
        return int(self.model.config.vision_config.image_size)

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``(N, 3, S, S)`` images -> unit-norm float32 embeddings ``(N, D)``."""
        pixels = pixels.to(self.device, self.dtype, non_blocking=True)
        features = self.model.get_image_features(pixel_values=pixels).pooler_output
        return F.normalize(features.float(), dim=-1)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Texts -> unit-norm float32 embeddings ``(N, D)``; longer texts are cut at 77 tokens."""
        max_length = int(self.model.config.text_config.max_position_embeddings)
        out = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(self.device)
            features = self.model.get_text_features(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).pooler_output
            out.append(F.normalize(features.float(), dim=-1))
        return torch.cat(out)


#: ``auto`` for CLIP on CUDA: fp16 on every card, CLIP's documented exception to the project's
#: precision rule (:func:`dlcv.runtime.resolve_precision`): OpenAI released its weights in
#: fp16, so the Problem 3 scores do not depend on the card. fp32 on the CPU.
AUTO_PRECISION = "fp16"


def clip_dtype(precision: str, device: torch.device) -> torch.dtype:
    """:func:`dlcv.runtime.resolve_dtype` with CLIP's ``auto`` (fp16 on CUDA)."""
    return resolve_dtype(precision, device, auto=AUTO_PRECISION, choices=PRECISIONS)


def _load_hf_folder(folder: Path) -> CLIPModel:
    from safetensors import SafetensorError

    try:
        return CLIPModel.from_pretrained(
            str(folder), local_files_only=True, dtype=torch.float32, attn_implementation="sdpa"
        )
    except SafetensorError as err:  # a damaged or hostile model.safetensors (a header bomb, say)
        raise UserError(
            f"cannot load a CLIP model from {folder}: its weights file is not a usable "
            f"safetensors file ({str(err).strip().splitlines()[0]})"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot load a CLIP model from {folder}: {first}") from None


def _load_openai_file(path: Path) -> CLIPModel:
    state = read_openai_state_dict(path)
    try:
        config = openai_config(state)
    except UserError as err:
        raise ArgumentError(f"`clip` {path}: {err}") from None
    config._attn_implementation = "sdpa"
    model = CLIPModel(config)
    missing, unexpected = model.load_state_dict(openai_to_hf_state_dict(state), strict=False)
    if missing or unexpected:
        raise UserError(
            f"{path}: does not match the CLIP architecture read from its shapes "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    return model


def wrap_clip_model(
    model: CLIPModel,
    tokenizer: CLIPTokenizer,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    source: str = "in memory",
) -> ClipModel:
    """Move ``model`` to ``device`` in the dtype ``precision`` asks for, frozen, in eval mode."""
    device = torch.device(device)
    dtype = clip_dtype(precision, device)
    scale = float(model.logit_scale.detach().float().exp())
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return ClipModel(model, tokenizer, device, dtype, source, scale)


def load_clip(
    spec: str | Path | None = None, device: torch.device | str = "cpu", precision: str = "auto"
) -> ClipModel:
    """Load CLIP from ``spec`` (or the default lookup) onto ``device`` in eval mode."""
    clip_dtype(precision, torch.device(device))  # reject a bad --precision before loading
    source = resolve_clip_source(spec)
    if source.is_dir():
        model = _load_hf_folder(source)
        max_length = int(model.config.text_config.max_position_embeddings)
        tokenizer = load_clip_tokenizer(source, max_length)
    else:
        model = _load_openai_file(source)
        tokenizer = load_clip_tokenizer(None, int(model.config.text_config.max_position_embeddings))
    return wrap_clip_model(model, tokenizer, device, precision, str(source))
