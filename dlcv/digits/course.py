"""Problem 1 (``hw2_1.sh``): the course's 1,000 generated digits, from a model file to PNGs.

:func:`hw2_1` is the whole job: it checks the settings, resolves the device once, loads the
model with the sampler settings it is sampled with (:func:`dlcv.digits.model.load_for_sampling`:
the flags given, else the model's config), prepares ``OUT/mnistm`` and ``OUT/svhn`` before the
sampling, samples the 20 classes x ``n_per_digit`` images and writes
``OUT/{mnistm,svhn}/{digit}_{idx:03d}.png``.
"""

from __future__ import annotations

from pathlib import Path

from dlcv.cli import ArgumentError, check_batch_size
from dlcv.digits.model import load_for_sampling
from dlcv.digits.sampling import (
    SampleRequest,
    prepare_course_folders,
    sample_course_set,
    write_course_outputs,
)
from dlcv.runtime import cuda_backends, pick_device

#: Images per digit per dataset the course's grader reads.
N_PER_DIGIT = 50


def hw2_1(
    out_dir: str | Path,
    ckpt: str | Path | None = None,
    *,
    request: SampleRequest | None = None,
    n_per_digit: int = N_PER_DIGIT,
    batch_size: int = 1000,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """The whole of ``hw2_1.sh``; returns the paths written.

    ``ckpt``: the model (``None``: ``$PB1_CKPT``, else ``checkpoints/pb1/model.safetensors``,
    else the shipped model; :func:`dlcv.digits.model.resolve_checkpoint`). ``request``: the
    sampler settings asked for (``None`` values: the model's). Every input is checked before
    the sampling starts; a seed and an image index give the same image whatever ``batch_size``.
    """
    if not 1 <= n_per_digit <= 999:
        raise ArgumentError(f"`n_per_digit` must be 1-999, got {n_per_digit}")
    check_batch_size(batch_size)
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ArgumentError(f"`out_dir` {out_dir} exists and is not a folder")
    dev = pick_device(device)
    job = load_for_sampling(ckpt, dev, request)
    prepare_course_folders(out_dir, n_per_digit)  # before the sampling: fail or warn now
    print(f"{job.path}: {job.settings.describe()}, on {dev}", flush=True)
    with cuda_backends(dev):
        images = sample_course_set(
            job.model,
            job.schedule,
            n_per_digit,
            **job.settings.as_kwargs(),
            seed=seed,
            batch_size=batch_size,
            progress=progress,
        )
    return write_course_outputs(images, out_dir, n_per_digit)
