"""dlcv.clip_eval.preprocess: CLIP's transform and batched encoding of files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from dlcv.cli import UserError
from dlcv.clip_eval.loading import wrap_clip_model
from dlcv.clip_eval.preprocess import clip_transform, encode_image_files
from dlcv.clip_eval.tiny import random_clip
from dlcv.clip_tokenizer import offline_clip_tokenizer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from clip.clip import _transform as openai_transform


def _random_image(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(50, 40), (32, 32), (300, 512)])
def test_transform_equals_openai_clip(size):
    """Resize, crop and normalisation equal OpenAI's own transform (its package's copy of CLIP's
    mean and std: a mean or std of ours that differed would show here)."""
    image = _random_image(*size, seed=1)
    ours = clip_transform(32)(image)
    assert ours.shape == (3, 32, 32)
    torch.testing.assert_close(ours, openai_transform(32)(image))


@pytest.fixture(scope="module")
def tiny():
    return wrap_clip_model(random_clip(), offline_clip_tokenizer())


def test_encode_files_in_batches_equals_one_pass(tiny, tmp_path):
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.png")
        _random_image(40, 36, seed=i).save(paths[-1])
    batched = encode_image_files(tiny, paths, batch_size=2)
    pixels = torch.stack([openai_transform(32)(Image.open(p)) for p in paths])
    with torch.no_grad():
        direct = tiny.model.get_image_features(pixel_values=pixels).pooler_output
    torch.testing.assert_close(batched, torch.nn.functional.normalize(direct, dim=-1))
    torch.testing.assert_close(batched.norm(dim=-1), torch.ones(5))


def test_unreadable_image_is_named(tiny, tmp_path):
    good, bad = tmp_path / "a.png", tmp_path / "b.png"
    _random_image(8, 8, seed=0).save(good)
    bad.write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"cannot read image .*b\.png"):
        encode_image_files(tiny, [good, bad], batch_size=2)
    with pytest.raises(UserError, match="no images"):
        encode_image_files(tiny, [])
