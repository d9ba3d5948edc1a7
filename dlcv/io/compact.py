"""Weights stored small: large matrices as int8 with one scale per row, the rest as fp16.

For a model that must travel inside the repository (the shipped Problem 1 model, under
10 MB). Each 2-D floating-point tensor of at least ``min_numel`` values ``W`` is stored as
``q = round(W / s)`` (int8, ``|q| <= 127``) with the per-row scale ``s = max_j |W_ij| / 127``
(fp16) under ``NAME.int8_scale``; every other floating-point tensor as fp16. Weight-only
symmetric quantisation of this kind changes a linear layer's output by about 0.4% of a row's
largest weight per entry; what it does to a model's results is measured on the stored file
(the shipped model is graded as stored). :func:`expand_state_dict` undoes the storage into
fp32 and leaves a state dict that was never compacted as it is.
"""

from __future__ import annotations

import torch

SCALE_SUFFIX = ".int8_scale"


def compact_state_dict(
    state: dict[str, torch.Tensor], min_numel: int = 65_536, keep: tuple[str, ...] = ()
) -> dict[str, torch.Tensor]:
    """``state`` with its large matrices as int8 + per-row fp16 scales and the other floating
    tensors as fp16; names in ``keep`` are stored as fp16 only (no int8)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        t = tensor.detach().cpu()
        if not t.is_floating_point():
            out[name] = t
        elif t.dim() == 2 and t.numel() >= min_numel and name not in keep:
            scale = (t.abs().amax(dim=1, keepdim=True).float() / 127.0).clamp_min(1e-12).half()
            out[name] = (t.float() / scale.float()).round().clamp(-127, 127).to(torch.int8)
            out[name + SCALE_SUFFIX] = scale
        else:
            out[name] = t.half()
    return out


def expand_state_dict(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The fp32 state dict of :func:`compact_state_dict`'s output (any other state dict is
    returned as it is: fp16 tensors are cast when loaded into a model)."""
    if not any(name.endswith(SCALE_SUFFIX) for name in tensors):
        return tensors
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = tensors.get(name + SCALE_SUFFIX)
        if scale is not None and tensor.dtype == torch.int8:
            out[name] = tensor.float() * scale.float()
        else:
            out[name] = tensor.float() if tensor.is_floating_point() else tensor
    return out
