"""What the CLIP benches share: the sizes they build and synthetic zero-shot data.

``bench/bench_clip.py`` and ``bench/gpu_check.py`` (its ``clip`` part) time zero-shot classification on
made-up PNGs: the work does not depend on the pixel values or the weights, so the timings mean
something and the accuracies nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from dlcv.clip_eval.tiny import clip_config, vit_b32_config

#: The CLIP sizes the benches build with random weights (:func:`dlcv.clip_eval.tiny.random_clip`).
ARCHS = {"tiny": clip_config, "vit-b32": vit_b32_config}


def smooth_image(rng: np.random.Generator, size: int) -> Image.Image:
    """A random image with some structure (upsampled noise), so PNG sizes are realistic."""
    low = rng.integers(0, 256, (max(size // 16, 2), max(size // 16, 2), 3), dtype=np.uint8)
    return Image.fromarray(low).resize((size, size), Image.BICUBIC)


def write_zeroshot_data(root: Path, classes: int, per_class: int, size: int, seed: int) -> Path:
    """``root/val/{class_id}_{image_id}.png`` and ``root/id2label.json`` with made-up labels."""
    rng = np.random.default_rng(seed)
    (root / "val").mkdir(parents=True)
    labels = {str(c): f"class_{c}" for c in range(classes)}
    (root / "id2label.json").write_text(json.dumps(labels))
    for c in range(classes):
        for j in range(per_class):
            smooth_image(rng, size).save(root / "val" / f"{c}_{j:04d}.png")
    return root
