"""One prepared GPU check: every problem's real code path on full-size networks, in at most 8 minutes.

    python bench/gpu_check.py --out gpu_check_out          # CUDA only (make gpu-check)
    python bench/gpu_check.py --dry-run --out /tmp/gc      # every part on the CPU, tiny networks, ~1 min
    python bench/gpu_check.py --out gpu_check_out --parts sd ti   # some parts only

GPU time for this project is rare and short, and no weights can be downloaded onto the
machine, so the networks are built from the configurations in the repository with random
weights: speed and memory do not depend on the weights (accuracies only mean something
for Problem 1, which trains its own model and graders here). Each part runs in its own
process under its own time limit (killed with its children when it overruns; what it
recorded until then is kept), and all of them within --max-seconds (480):

* ``pb1`` (240 s): PB1/train.py with the ``default`` recipe on ``--digits``
  (../shared/data/digits_mini; synthetic digits when it is missing) for 1,200 steps or 80 s,
  whichever comes first: steps/s and images/s; ``hw2_1.sh`` (the 1,000 images) wall time;
  digit graders trained there (:func:`dlcv_bench.pb1.ensure_graders`, 30 epochs) and the
  accuracies of the 1,000 images by ``evaluation/digit_classifier.py``;
* ``pb2`` (45 s): the full-size face UNet (width 128) with random weights saved in the
  course's state-dict format, ten 256x256 noises: ``hw2_2.sh`` wall time, the largest uint8
  difference between the default precision (TF32) and ``--precision fp32``, and the core DDIM
  loop against diffusers' DDIMScheduler loop on the same UNet (time ratio);
* ``sd`` (90 s): SD v1's three networks with random weights, hw2_3's defaults (DPM-Solver++
  20 steps, guidance 7.5, batch 5, 512x512) in fp16 and in bf16: seconds per image and peak
  allocated memory (with the memory planner's estimate), diffusers' StableDiffusionPipeline
  with DPMSolverMultistepScheduler on the same networks and latents (time ratio), DDIM 50 for
  comparison, and the projected ``hw2_3.sh`` time for 100 images at this card's ``auto``
  precision;
* ``ti`` (55 s): Textual Inversion through ``train_textual_inversion`` (the trainer, its
  GradScaler for fp16) at PB3/train.py's default batch (4) and resolution (512), fp16 and
  bf16: seconds per step and peak allocated memory (with the planner's estimate);
* ``clip`` (30 s): CLIP ViT-B/32 with random weights, zero-shot classification of 1,000
  CIFAR-sized PNGs end to end (decode, preprocess, encode, classify): images/s.

Writes ``OUT/gpu_check.json`` (every figure, the device, compute capability, torch / CUDA /
cuDNN / diffusers / transformers versions, each part's status and time) and
``OUT/gpu_check.md`` (the same as a Markdown table, for the README); each part's log is in
``OUT/logs/``. A ratio is ours / the reference measured in the same run (below 1: faster).
--dry-run runs the same code on tiny networks on the CPU (CUDA hidden), as the test suite does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import torch

from dlcv.cli import UserError, run

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

PARTS = ("pb1", "pb2", "sd", "ti", "clip")
#: Seconds each part may take on the GPU (process start-up included); --dry-run allows DRY_LIMIT each.
LIMITS = {"pb1": 240, "pb2": 45, "sd": 90, "ti": 55, "clip": 30}
DRY_LIMIT = 180
MAX_SECONDS = 480
PROMPT = "A <new1> dog on a hilltop, in the style of David Revoy."

#: The real sizes (GPU) and the tiny ones (--dry-run).
SIZES: dict[bool, dict[str, Any]] = {
    False: {
        "pb1_config": "default",
        "pb1_steps": 1200,
        "pb1_budget": 80,
        "pb1_limit": None,
        "grader_epochs": 30,
        "face_width": 128,
        "face_size": 256,
        "face_num": 10,
        "sd": "v1",
        "sd_batch": 5,
        "sd_dtypes": ("fp16", "bf16"),
        "ti_batch": 4,
        "ti_steps": 15,
        "ti_images": 5,
        "ti_views": 2,
        "ti_precisions": ("fp16", "bf16"),
        "clip": "vit-b32",
        "clip_classes": 50,
        "clip_per_class": 20,
    },
    True: {
        "pb1_config": "tiny",
        "pb1_steps": 6,
        "pb1_budget": None,
        "pb1_limit": 200,
        "grader_epochs": 1,
        "face_width": 16,
        "face_size": 32,
        "face_num": 2,
        "sd": "tiny",
        "sd_batch": 2,
        "sd_dtypes": ("fp32", "bf16"),
        "ti_batch": 2,
        "ti_steps": 6,
        "ti_images": 2,
        "ti_views": 2,
        "ti_precisions": ("fp16", "bf16"),
        "clip": "tiny",
        "clip_classes": 5,
        "clip_per_class": 4,
    },
}


# ---- recording ------------------------------------------------------------------------------------


@dataclass
class Context:
    """What a part needs: the device, its sizes, its own folder, the digits."""

    device: torch.device
    dry: bool
    out: Path
    digits: Path

    @property
    def size(self) -> dict[str, Any]:
        return SIZES[self.dry]


class Recorder:
    """A part's figures, written to its JSON file after each one (a part cut short keeps them)."""

    def __init__(self, path: Path, part: str) -> None:
        self.path, self.data = path, {"part": part, "status": "running", "figures": [], "info": {}}
        self.began = time.perf_counter()
        self._write()

    def add(
        self,
        figure: str,
        value: float | str | None,
        unit: str = "",
        *,
        reference: float | None = None,
        note: str = "",
    ) -> None:
        """One figure; ``reference`` is the same measurement of the reference (ratio = value / it)."""
        ratio = value / reference if reference and isinstance(value, int | float) else None
        row = {
            "figure": figure,
            "value": value,
            "unit": unit,
            "reference": reference,
            "ratio": ratio,
            "note": note,
        }
        self.data["figures"].append(row)
        shown = f"{value:.4g}" if isinstance(value, float) else "n/a" if value is None else value
        extra = f" (reference {reference:.4g}, ratio {ratio:.3f})" if ratio is not None else ""
        print(f"[{self.data['part']}] {figure}: {shown} {unit}{extra}", flush=True)
        self._write()

    def info(self, **items: Any) -> None:
        self.data["info"].update(items)
        self._write()

    def finish(self, status: str, error: str = "") -> None:
        self.data.update(status=status, seconds=round(time.perf_counter() - self.began, 1))
        if error:
            self.data["error"] = error
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Wall seconds of ``fn()`` with the device's queued work included, and its result."""
    sync(device)
    began = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - began, result


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, float]]:
    """``{"gb": peak allocated GB}`` of the block on CUDA (``None`` elsewhere)."""
    out: dict[str, float | None] = {"gb": None}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    yield out
    if device.type == "cuda":
        out["gb"] = torch.cuda.max_memory_allocated(device) / 1e9


def run_command(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    """Run a repository command as a user would (output to ``log``); its wall seconds. Raises on failure."""
    full_env = {**os.environ, "PYTHON": sys.executable, **(env or {})}
    began = time.perf_counter()
    with open(log, "a") as sink:
        sink.write(f"$ {' '.join(cmd)}\n")
        sink.flush()
        code = subprocess.call(cmd, cwd=REPO, env=full_env, stdout=sink, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - began
    if code:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(f"{Path(cmd[1]).name if len(cmd) > 1 else cmd[0]} failed ({code}): {tail[0]}")
    return seconds


# ---- the parts ------------------------------------------------------------------------------------


def part_pb1(ctx: Context, rec: Recorder) -> None:
    """PB1's default recipe trained for a fixed number of steps, hw2_1.sh, graders, accuracies."""
    from dlcv.digits.model import load_config
    from dlcv_bench.pb1 import ensure_graders, split_for_graders

    s = ctx.size
    data = ctx.digits
    if not (data / "mnistm" / "train.csv").is_file():
        from dlcv.data.synthetic_digits import write_synthetic_digits

        data = write_synthetic_digits(ctx.out / "synthetic_digits", n_train=500, n_test=100, progress=False)
        rec.info(data_note=f"{ctx.digits} not found: synthetic digits instead (accuracies mean little)")
    rec.info(data=str(data), config=s["pb1_config"])
    # the generator and the graders learn from disjoint halves of the train split
    parts = split_for_graders(data, ctx.out / "split")
    log = ctx.out / "commands.log"
    model_dir = ctx.out / "pb1"
    cmd = [
        sys.executable,
        "PB1/train.py",
        "--data",
        str(parts["generator"]),
        "--out",
        str(model_dir),
        "--config",
        s["pb1_config"],
        "--steps",
        str(s["pb1_steps"]),
    ]
    if s["pb1_budget"]:
        cmd += ["--time-budget", str(s["pb1_budget"])]
    if s["pb1_limit"]:
        cmd += ["--limit", str(s["pb1_limit"])]
    wall = run_command(cmd, log)
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    batch = int(load_config(s["pb1_config"]).train.batch_size)
    done = records[-1]["step"]
    first, last = (records[1] if len(records) > 2 else records[0]), records[-1]  # the first window warms up
    rate = (last["step"] - first["step"]) / max(last["elapsed_s"] - first["elapsed_s"], 1e-9)
    rec.add(
        f"PB1 training ({s['pb1_config']} recipe, batch {batch}): steps done",
        done,
        "steps",
        note=f"asked {s['pb1_steps']}" + (f", capped at {s['pb1_budget']} s" if s["pb1_budget"] else ""),
    )
    rec.add("PB1 training speed", rate, "steps/s", note="after the first logging window")
    rec.add("PB1 training throughput", rate * batch, "images/s")
    rec.add("PB1/train.py wall time", wall, "s", note="start-up, data loading, final samples included")

    images = ctx.out / "pb1_images"
    wall = run_command(
        ["bash", "hw2_1.sh", str(images)], log, env={"PB1_CKPT": str(model_dir / "model.safetensors")}
    )
    rec.add("hw2_1.sh: 1,000 images, wall time", wall, "s", note="course limit 900 s on a 2080 Ti")

    began = time.perf_counter()
    graders = ensure_graders(parts["graders"], ctx.out / "graders", epochs=s["grader_epochs"])
    rec.add(
        f"two digit graders trained on the other half of {data.name} ({s['grader_epochs']} epochs)",
        time.perf_counter() - began,
        "s",
    )
    grades = ctx.out / "grades.json"
    run_command(
        [
            sys.executable,
            "evaluation/digit_classifier.py",
            "--folder",
            str(images),
            "--checkpoint",
            str(graders / "mnistm_classifier.safetensors"),
            "--svhn-checkpoint",
            str(graders / "svhn_classifier.safetensors"),
            "--json",
            str(grades),
        ],
        log,
    )
    result = json.loads(grades.read_text())
    for name in ("mnistm", "svhn"):
        rec.add(
            f"PB1 accuracy of the 1,000 images, {name} (independent graders)",
            result[name]["acc"],
            "",
            note=f"after {done} training steps",
        )


def part_pb2(ctx: Context, rec: Recorder) -> None:
    """hw2_2.sh on the full-size face UNet: wall time, default vs fp32 pixels, core vs diffusers DDIM."""
    import numpy as np
    from PIL import Image

    from dlcv.faces.ddim import face_eps_fn, face_precision, load_face_unet, precision_context
    from dlcv_bench.faces import core_loop, diffusers_loop, random_unet

    s = ctx.size
    unet_path, noise_dir = ctx.out / "UNet.pt", ctx.out / "noise"
    random_unet(s["face_width"], unet_path)  # a plain state dict, as the course's UNet.pt
    noise_dir.mkdir()
    side = s["face_size"]
    noises = torch.randn(s["face_num"], 3, side, side, generator=torch.Generator().manual_seed(0))
    for i, noise in enumerate(noises):
        torch.save(noise[None].clone(), noise_dir / f"{i:02d}.pt")
    log = ctx.out / "commands.log"
    default = face_precision("auto", ctx.device)
    rec.info(width=s["face_width"], noises=s["face_num"], size=s["face_size"], default_precision=default)
    wall = run_command(["bash", "hw2_2.sh", str(noise_dir), str(ctx.out / "default"), str(unet_path)], log)
    rec.add(
        f"hw2_2.sh wall time ({s['face_num']} noises, {s['face_size']} px, {default})",
        wall,
        "s",
        note="course limit 300 s on a 2080 Ti",
    )
    wall32 = run_command(
        [
            sys.executable,
            "PB2/inference.py",
            "--noise-dir",
            str(noise_dir),
            "--out-dir",
            str(ctx.out / "fp32"),
            "--unet",
            str(unet_path),
            "--precision",
            "fp32",
            "--quiet",
        ],
        log,
    )
    rec.add("PB2/inference.py --precision fp32 wall time", wall32, "s", reference=wall)
    diff = 0
    for png in sorted((ctx.out / "default").glob("*.png")):
        a = np.asarray(Image.open(png), dtype=np.int16)
        b = np.asarray(Image.open(ctx.out / "fp32" / png.name), dtype=np.int16)
        diff = max(diff, int(np.abs(a - b).max()))
    rec.add(f"largest uint8 difference, {default} vs fp32", diff, "grey levels", note="random weights")

    model = load_face_unet(unet_path, ctx.device)
    eps_fn = face_eps_fn(model, ctx.device, default, channels_last=ctx.device.type == "cuda")
    x = noises.to(ctx.device)
    with torch.no_grad(), precision_context(default, ctx.device):
        eps_fn(x, torch.full((len(x),), 981, device=ctx.device))  # warm-up (cuDNN autotuning)
        core, _ = timed(lambda: core_loop(eps_fn, x), ctx.device)
        ref, _ = timed(lambda: diffusers_loop(eps_fn, x), ctx.device)
    rec.add(
        "core DDIM loop (50 steps, in-process)",
        core,
        "s",
        reference=ref,
        note="reference: diffusers' DDIMScheduler loop, same UNet",
    )


def _build_sd(ctx: Context):
    """SD v1's networks (tiny ones for --dry-run) with random weights, initialised on the device."""
    from dlcv.stable_diffusion.config import sd_v1_config, tiny_config
    from dlcv.stable_diffusion.tiny import build_tiny_sd

    config = sd_v1_config() if ctx.size["sd"] == "v1" else tiny_config()
    with torch.device(ctx.device):  # random initialisation on a GPU takes seconds, on a CPU a minute
        return build_tiny_sd(seed=0, config=config)


def _memory_estimate(sd, batch: int, resolution: int, training: bool, fused: bool) -> float:
    from dlcv.stable_diffusion.memory import RESERVE, weight_bytes, working_bytes

    nets = (sd.unet, sd.vae, sd.text_encoder)
    need = working_bytes(batch, resolution, sd.dtype, training=training, fused_attention=fused)
    return (weight_bytes(*nets) + need + RESERVE) / 1e9


def part_sd(ctx: Context, rec: Recorder) -> None:
    """hw2_3's generation at its defaults in fp16 and bf16, against diffusers' pipeline."""
    from dlcv.runtime import DTYPES, resolve_precision
    from dlcv.stable_diffusion import generation as gen
    from dlcv.stable_diffusion.memory import COURSE_LIMIT_BYTES, auto_memory_plan, fused_attention_available
    from dlcv_bench.sd_reference import diffusers_pipeline

    s = ctx.size
    batch = s["sd_batch"]
    sd = _build_sd(ctx)
    auto = resolve_precision("auto", ctx.device)
    options = gen.SamplingOptions()  # hw2_3.sh's defaults
    res = options.check(sd)
    rec.info(batch=batch, resolution=res, solver=options.solver, steps=options.steps, auto_precision=auto)
    per_image: dict[str, float] = {}
    for name in s["sd_dtypes"]:
        dtype = DTYPES[name]
        gen.prepare_for_inference(sd.to(ctx.device, dtype), ctx.device)  # (SDPA again: no slicing left over)
        opts = gen.SamplingOptions(resolution=res)
        plan = auto_memory_plan(sd, batch, res, opts)
        warm = gen.SamplingOptions(steps=2, resolution=res)
        gen.generate(sd, PROMPT, batch, warm, batch_size=batch)  # cuDNN autotuning, the allocator
        gen._WARNED["vae"] = False
        with peak_memory(ctx.device) as peak:
            seconds, _ = timed(partial(gen.generate, sd, PROMPT, batch, opts, batch_size=batch), ctx.device)
        pipe = diffusers_pipeline(sd, "dpm++")
        z = gen.initial_latents(sd, batch, res, seed=0).to(ctx.device, dtype)
        run_pipe = partial(
            pipe,
            [PROMPT] * batch,
            height=res,
            width=res,
            latents=z,
            num_inference_steps=opts.steps,
            guidance_scale=opts.guidance,
            output_type="pt",
        )
        run_pipe()  # warm-up
        reference, _ = timed(run_pipe, ctx.device)
        per_image[name] = seconds / batch
        label = f"{name}{' (auto here)' if name == auto else ''}"
        retried = " ; the VAE decode overflowed and was redone in fp32" if gen._WARNED["vae"] else ""
        rec.add(
            f"SD generation {label}: s per image (dpm++ {opts.steps}, batch {batch}, {res} px)",
            per_image[name],
            "s",
            reference=reference / batch,
            note=f"reference: diffusers StableDiffusionPipeline, same networks{retried}",
        )
        fused = fused_attention_available(ctx.device, dtype)
        estimate = _memory_estimate(sd, batch, res, False, fused)
        switched = ", ".join(plan.switches) if plan and plan.switches else "none"
        rec.add(
            f"SD generation {label}: peak allocated",
            peak["gb"],
            "GB",
            note=f"planner's estimate {estimate:.1f} GB; savers: {switched}; "
            f"course limit {COURSE_LIMIT_BYTES / 1e9:.1f} GB",
        )
    if auto in per_image:
        dtype = DTYPES[auto]
        gen.prepare_for_inference(sd.to(ctx.device, dtype), ctx.device)
        ddim = gen.SamplingOptions(solver="ddim", steps=50, resolution=res)
        seconds, _ = timed(partial(gen.generate, sd, PROMPT, batch, ddim, batch_size=batch), ctx.device)
        rec.add(
            f"SD generation {auto}, DDIM 50: s per image",
            seconds / batch,
            "s",
            reference=per_image[auto],
            note="reference: the default, DPM-Solver++ 20",
        )
        projected = 100 * per_image[auto] / 60
        evaluations = gen.unet_evaluations(100, options.steps, options.guidance)
        published = evaluations / gen.RTX_2080_TI_UNET_EVALS_PER_S
        rec.add(
            f"hw2_3.sh projected for 100 images here ({auto})",
            projected,
            "min",
            note=f"model loading excluded; on a 2080 Ti by the estimate: {published / 60:.1f} min",
        )


def part_ti(ctx: Context, rec: Recorder) -> None:
    """Textual Inversion steps through the real trainer, at PB3/train.py's default batch."""
    from dlcv.runtime import DTYPES, resolve_precision
    from dlcv.stable_diffusion.memory import fused_attention_available
    from dlcv.stable_diffusion.textual_inversion import TIConfig, train_textual_inversion
    from dlcv.stable_diffusion.ti_data import Augmentation
    from dlcv.training import TrainConfig

    s = ctx.size
    sd = _build_sd(ctx)
    res = sd.config.resolution
    batch = s["ti_batch"]
    auto = resolve_precision("auto", ctx.device)
    g = torch.Generator().manual_seed(0)
    images = [
        torch.randint(0, 256, (3, res + 37, res + 11), generator=g, dtype=torch.uint8)
        for _ in range(s["ti_images"])
    ]
    rec.info(batch=batch, resolution=res, steps=s["ti_steps"], views=s["ti_images"] * s["ti_views"])
    for i, name in enumerate(s["ti_precisions"]):
        augmentation = Augmentation(res, s["ti_views"])
        ti = TIConfig(token=f"<gpu-check-{i}>", init_word="dog", augmentation=augmentation, validate_images=0)
        log_every = max(1, s["ti_steps"] // 3)
        cfg = TrainConfig(
            out_dir=ctx.out / f"ti_{name}",
            steps=s["ti_steps"],
            batch_size=batch,
            lr=5e-3,
            ema_decay=None,
            grad_clip=None,
            log_every=log_every,
            ckpt_every=0,
            precision=name,
            device=str(ctx.device),
        )
        with peak_memory(ctx.device) as peak:
            train_textual_inversion(sd, images, ti, cfg)
        records = [json.loads(line) for line in (cfg.out_dir / "metrics.jsonl").read_text().splitlines()]
        steady = records[1:] or records  # the first window holds the warm-up
        rate = sum(r["images_per_s"] for r in steady) / len(steady)
        label = f"{name}{' (auto here)' if name == auto else ''}"
        scale = f"; loss scale {records[-1]['loss_scale']:g}" if "loss_scale" in records[-1] else ""
        rec.add(
            f"Textual Inversion {label}: s per step (batch {batch}, {res} px)",
            batch / rate,
            "s",
            note=f"trainer steps after the first window{scale}",
        )
        fused = fused_attention_available(ctx.device, DTYPES[name])
        estimate = _memory_estimate(sd, batch, res, True, fused)
        rec.add(
            f"Textual Inversion {label}: peak allocated",
            peak["gb"],
            "GB",
            note=f"VAE encoding of the views included; planner's estimate {estimate:.1f} GB",
        )


def part_clip(ctx: Context, rec: Recorder) -> None:
    """CLIP ViT-B/32 (random weights) zero-shot, end to end."""
    from dlcv.clip_eval.loading import wrap_clip_model
    from dlcv.clip_eval.prompts import DEFAULT_TEMPLATE
    from dlcv.clip_eval.tiny import random_clip
    from dlcv.clip_eval.zeroshot import read_zeroshot_folder, run_zeroshot
    from dlcv.clip_tokenizer import offline_clip_tokenizer
    from dlcv_bench.clip import ARCHS, write_zeroshot_data

    s = ctx.size
    clip = wrap_clip_model(
        random_clip(ARCHS[s["clip"]](), seed=0),
        offline_clip_tokenizer(),
        ctx.device,
        "auto",
        f"random {s['clip']}",
    )
    data = read_zeroshot_folder(
        write_zeroshot_data(ctx.out / "zs", s["clip_classes"], s["clip_per_class"], 32, seed=0)
    )
    zero_shot = lambda: run_zeroshot(clip, data, (DEFAULT_TEMPLATE,), False, 256, 0, False)  # noqa: E731
    zero_shot()  # warm-up
    seconds = min(timed(zero_shot, ctx.device)[0] for _ in range(2))
    n = len(data.files)
    rec.add(
        f"CLIP {s['clip']} zero-shot ({str(clip.dtype)[6:]}, {n} images of 32 px)",
        n / seconds,
        "images/s",
        note="decode, preprocess, encode, classify; random weights",
    )


PART_FUNCTIONS = {"pb1": part_pb1, "pb2": part_pb2, "sd": part_sd, "ti": part_ti, "clip": part_clip}


# ---- the parent: environment, parts under time limits, the table ------------------------------------------


def environment(dry: bool) -> dict[str, Any]:
    import diffusers
    import transformers

    from dlcv.runtime import resolve_precision

    env: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dry_run": dry,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "host_cpu": platform.processor() or platform.machine(),
    }
    if not dry and torch.cuda.is_available():
        device = torch.device("cuda")
        props = torch.cuda.get_device_properties(device)
        env.update(
            device=props.name,
            capability=f"{props.major}.{props.minor}",
            memory_gb=round(props.total_memory / 1e9, 1),
            auto_precision=resolve_precision("auto", device),
        )
    else:
        env.update(device="CPU (dry run: tiny networks)", auto_precision="fp32")
    return env


def run_part(name: str, args: argparse.Namespace, limit: float) -> dict[str, Any]:
    """Run one part in its own process group; kill the group when it overruns ``limit``."""
    out = Path(args.out)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--part",
        name,
        "--out",
        str(out),
        "--digits",
        str(args.digits),
    ] + (["--dry-run"] if args.dry_run else [])
    env = dict(os.environ)
    if args.dry_run:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU, even on a GPU machine
    log = out / "logs" / f"{name}.log"
    began = time.perf_counter()
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    seconds = time.perf_counter() - began
    path = out / "parts" / f"{name}.json"
    result = json.loads(path.read_text()) if path.is_file() else {"part": name, "figures": [], "info": {}}
    if seconds >= limit:
        result.update(status="timed out", error=f"killed after its limit of {limit:.0f} s")
    elif proc.returncode and result.get("status") != "failed":
        result.update(status="failed", error=f"exit code {proc.returncode}")
    result["seconds"] = round(seconds, 1)
    result["limit_s"] = round(limit)
    return result


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    card = f" (compute capability {env['capability']}, {env['memory_gb']} GB)" if "capability" in env else ""
    lines = [
        f"GPU check of {env['date']} on **{env['device']}**{card}: torch {env['torch']}, "
        f"CUDA {env['cuda']}, cuDNN {env['cudnn']}, diffusers {env['diffusers']}, "
        f"transformers {env['transformers']}; `auto` precision here: {env['auto_precision']}. "
        f"Total {report['seconds']:.0f} s.",
        "",
        "| part | figure | value | reference (same run) | ratio | note |",
        "|---|---|---|---|---|---|",
    ]

    def fmt(v: Any) -> str:
        if v is None:
            return "n/a"
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    for name, part in report["parts"].items():
        for row in part.get("figures", []):
            value = f"{fmt(row['value'])} {row['unit']}".strip()
            reference = "" if row["reference"] is None else f"{fmt(row['reference'])} {row['unit']}".strip()
            ratio = "" if row["ratio"] is None else fmt(row["ratio"])
            lines.append(f"| {name} | {row['figure']} | {value} | {reference} | {ratio} | {row['note']} |")
        status = part.get("status")
        if status != "ok":
            after = f" after {part['seconds']} s" if part.get("seconds") is not None else ""
            lines.append(f"| {name} | **{status}**{after} | | | | {part.get('error', '')} |")
    return "\n".join(lines) + "\n"


def child(args: argparse.Namespace) -> None:
    """Run one part (in this process) and record its figures."""
    out = Path(args.out)
    device = torch.device("cpu" if args.dry_run else "cuda")
    from dlcv.runtime import configure_backends

    configure_backends(device)
    if args.dry_run:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    rec = Recorder(out / "parts" / f"{args.part}.json", args.part)
    folder = Path(tempfile.mkdtemp(prefix=f"{args.part}_", dir=out / "work"))
    ctx = Context(device=device, dry=args.dry_run, out=folder, digits=Path(args.digits))
    try:
        PART_FUNCTIONS[args.part](ctx, rec)
    except Exception as err:  # noqa: BLE001 - recorded, and the other parts go on
        rec.finish("failed", f"{type(err).__name__}: {err}")
        raise
    rec.finish("ok")


def main(argv: list[str] | None = None) -> None:
    from dlcv_bench.pb1 import DEFAULT_DATA

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="gpu_check_out", help="output folder (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="every part on the CPU with tiny networks")
    p.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS), help="parts to run (default: all)"
    )
    p.add_argument("--digits", default=str(DEFAULT_DATA), help="digits for PB1 (default: %(default)s)")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=MAX_SECONDS,
        help="the whole check's limit; parts share what is left (default: %(default)s)",
    )
    p.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)  # internal: run one part here
    args = p.parse_args(argv)
    if args.part:
        return child(args)
    if not args.dry_run and not torch.cuda.is_available():
        raise UserError(
            "gpu_check needs CUDA (use --dry-run to run every part on the CPU with tiny networks)"
        )
    out = Path(args.out)
    for sub in ("parts", "logs", "work"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"environment": environment(args.dry_run), "parts": {}}
    print(
        f"gpu_check on {report['environment']['device']}: parts {', '.join(args.parts)}, "
        f"at most {args.max_seconds:.0f} s",
        flush=True,
    )
    began = time.perf_counter()
    for name in args.parts:
        left = args.max_seconds - (time.perf_counter() - began)
        limit = min(DRY_LIMIT if args.dry_run else LIMITS[name], left)
        if limit < 5:
            report["parts"][name] = {
                "part": name,
                "status": "skipped",
                "error": "no time left",
                "figures": [],
            }
            continue
        part = run_part(name, args, limit)
        report["parts"][name] = part
        print(
            f"== {name}: {part['status']} in {part['seconds']:.0f} s (limit {limit:.0f} s), "
            f"{len(part.get('figures', []))} figures {part.get('error', '')}",
            flush=True,
        )
        if part["status"] != "ok":
            tail = (out / "logs" / f"{name}.log").read_text(errors="replace").strip().splitlines()[-8:]
            print("\n".join("   " + line[-200:] for line in tail), flush=True)
    report["seconds"] = round(time.perf_counter() - began, 1)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))
    print((out / "gpu_check.md").read_text(), flush=True)
    failed = [n for n, part in report["parts"].items() if part.get("status") != "ok"]
    print(
        f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}"
        + (f"; not ok: {', '.join(failed)}" if failed else "")
    )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    run(main)
