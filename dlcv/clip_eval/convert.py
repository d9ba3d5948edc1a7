"""OpenAI CLIP checkpoints (``ViT-B-32.pt``) -> transformers :class:`~transformers.CLIPModel`.

transformers 5 no longer ships its OpenAI -> Hugging Face conversion script, so the key
mapping is written out here. It covers the ViT variants of OpenAI's ``clip.model.CLIP``
(Radford et al., 2021): the fused attention projection ``in_proj_weight`` is split into
the query, key and value projections, and the two projection matrices (stored as
``x @ W``) become the transposed weights of bias-free linear layers. Architecture sizes
are read from the tensor shapes as ``clip.model.build_model`` reads them (heads =
width / 64, MLP width = 4 x width, QuickGELU, LayerNorm eps 1e-5).

Reading a file never unpickles Python objects: a plain state dict goes through
``torch.load(weights_only=True)`` (:func:`dlcv.io.checkpoint.torch_load`) or
safetensors; OpenAI's released files are TorchScript archives, read with ``torch.jit.load``
and used only for their ``state_dict()`` - their TorchScript methods are compiled by torch
but never called.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import CLIPConfig

from dlcv.cli import UserError
from dlcv.io.checkpoint import is_torchscript_archive, read_safetensors, torch_load

# Entries of OpenAI's TorchScript state dict that are not weights.
_NON_WEIGHTS = ("input_resolution", "context_length", "vocab_size")
_BLOCK_RENAMES = {
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
}


def read_openai_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of an OpenAI CLIP checkpoint: TorchScript archive, torch.save state dict or safetensors."""
    path = Path(path)
    what, expected = "CLIP checkpoint", "a CLIP checkpoint (ViT-B-32.pt or a state dict)"
    if path.suffix == ".safetensors":
        state = read_safetensors(path, what, "a CLIP state dict in safetensors format")[0]
    elif is_torchscript_archive(path):
        try:
            with warnings.catch_warnings():  # torch 2.x marks torch.jit.load as deprecated
                warnings.simplefilter("ignore")
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception as err:
            first = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
            raise UserError(f"cannot read {what} {path}: a damaged TorchScript archive ({first})") from None
    else:
        state = torch_load(path, what, expected=expected)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a CLIP state dict (a mapping of names to tensors)")
    return {k: v for k, v in state.items() if k not in _NON_WEIGHTS}


def _count_blocks(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    return len({k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix)})


def openai_config(state: Mapping[str, torch.Tensor]) -> CLIPConfig:
    """The transformers config of an OpenAI ViT CLIP state dict, read from its shapes."""
    if "visual.proj" not in state:
        if any(k.startswith(("visual.attnpool.", "visual.layer1.")) for k in state):
            raise UserError(
                "only the ViT variants of OpenAI CLIP are supported (this checkpoint has a ResNet "
                "image encoder); use ViT-B-32.pt"
            )
        example = next(iter(state), "nothing")
        raise UserError(
            f"not an OpenAI CLIP checkpoint: it has no 'visual.proj' weight (its first entry is "
            f"{example!r}); expected ViT-B-32.pt or a Hugging Face CLIP folder"
        )
    v_width, _, patch, _ = state["visual.conv1.weight"].shape
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    t_width = state["ln_final.weight"].shape[0]
    vocab_size = state["token_embedding.weight"].shape[0]
    return CLIPConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": t_width,
            "intermediate_size": 4 * t_width,
            "num_hidden_layers": _count_blocks(state, "transformer.resblocks."),
            "num_attention_heads": max(t_width // 64, 1),
            "max_position_embeddings": state["positional_embedding"].shape[0],
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
            # OpenAI pools the text at the end-of-text token, the highest id of the vocabulary.
            "bos_token_id": vocab_size - 2,
            "eos_token_id": vocab_size - 1,
            "pad_token_id": vocab_size - 1,
        },
        vision_config={
            "hidden_size": v_width,
            "intermediate_size": 4 * v_width,
            "num_hidden_layers": _count_blocks(state, "visual.transformer.resblocks."),
            "num_attention_heads": max(v_width // 64, 1),
            "image_size": patch * grid,
            "patch_size": patch,
            "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5,
        },
        projection_dim=state["text_projection"].shape[1],
        logit_scale_init_value=float(state["logit_scale"]),
    )


def _blocks(state: Mapping[str, torch.Tensor], src: str, dst: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith(src):
            continue
        index, name = key[len(src) :].split(".", 1)
        base = f"{dst}{index}."
        if name in ("attn.in_proj_weight", "attn.in_proj_bias"):
            kind = name.rsplit("_", 1)[1]  # "weight" or "bias"
            for proj, part in zip(("q", "k", "v"), value.chunk(3, dim=0), strict=True):
                out[f"{base}self_attn.{proj}_proj.{kind}"] = part
        elif name in _BLOCK_RENAMES:
            out[base + _BLOCK_RENAMES[name]] = value
        else:
            raise UserError(f"unexpected entry in the OpenAI CLIP state dict: {key}")
    return out


def openai_to_hf_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and split / transpose) OpenAI CLIP weights into transformers' CLIPModel layout."""
    try:
        out = {
            "logit_scale": state["logit_scale"],
            "text_projection.weight": state["text_projection"].t(),
            "visual_projection.weight": state["visual.proj"].t(),
            "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
            "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
            "text_model.final_layer_norm.weight": state["ln_final.weight"],
            "text_model.final_layer_norm.bias": state["ln_final.bias"],
            "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
            "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
            "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
            "vision_model.pre_layrnorm.weight": state["visual.ln_pre.weight"],
            "vision_model.pre_layrnorm.bias": state["visual.ln_pre.bias"],
            "vision_model.post_layernorm.weight": state["visual.ln_post.weight"],
            "vision_model.post_layernorm.bias": state["visual.ln_post.bias"],
        }
    except KeyError as err:
        raise UserError(f"not an OpenAI CLIP state dict: missing {err.args[0]}") from None
    out.update(_blocks(state, "transformer.resblocks.", "text_model.encoder.layers."))
    out.update(_blocks(state, "visual.transformer.resblocks.", "vision_model.encoder.layers."))
    return {k: v.detach().float().contiguous() for k, v in out.items()}
