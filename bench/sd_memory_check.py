"""Check the SD memory estimator (dlcv/stable_diffusion/memory.py) against measured peaks on the CPU.

    python bench/sd_memory_check.py [--threads 2] [--out docs/results/sd_memory_check.json]
    python bench/sd_memory_check.py --defaults     (the estimates at the course's defaults only)

Builds the full-size SD v1 networks (UNet, VAE, CLIP text encoder) with random weights, fp32 on
the CPU (about 4.3 GB; the peaks do not depend on the weights' values), and measures at several
batch sizes and resolutions what the estimator models (see :mod:`dlcv_bench.sd_memory`): a guided
UNet forward and a VAE decode of sampling, and a Textual Inversion step (forward and backward to
the placeholder vector). Each measured peak is set beside ``memory.sampling_parts`` /
``memory.working_bytes`` for the same shapes in fp32 and checked against
:data:`dlcv_bench.sd_memory.TOLERANCE`. About 10 minutes and 8 GB of memory on 2 threads.
``--small`` runs the same on a narrow model of SD's layout (seconds; for trying the command).
Every run also writes the estimator's figures at the course jobs' defaults (fp16: hw2_3.sh's
generation, PB3/train.py's Textual Inversion; weights, working memory, reserve) to
``docs/results/sd_memory_defaults.json``, the README's; ``--defaults`` writes only that (seconds).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dlcv.cli import UserError, run
from dlcv_bench.pb1 import REPO, provenance, write_json
from dlcv_bench.sd_memory import (
    SAMPLING_SHAPES,
    TOLERANCE,
    TRAINING_SHAPES,
    course_defaults,
    measure,
    probe_token,
    sampling_steps,
    training_step,
)

OUT = REPO / "docs" / "results" / "sd_memory_check.json"
DEFAULTS_OUT = REPO / "docs" / "results" / "sd_memory_defaults.json"
MB = 1e6


def check(row: dict) -> dict:
    """Add the ratio measured / estimated and whether it is within the tolerance."""
    row["ratio"] = row["tensor_bytes"] / row["estimate_bytes"]
    row["holds"] = TOLERANCE[0] <= row["ratio"] <= TOLERANCE[1]
    rss = row["rss_bytes"] / MB if row["rss_bytes"] is not None else float("nan")
    print(
        f"{row['step']:<22} batch {row['batch']} at {row['resolution']} px: measured "
        f"{row['tensor_bytes'] / MB:7.0f} MB (resident {rss:7.0f}), "
        f"estimated {row['estimate_bytes'] / MB:7.0f} MB, ratio {row['ratio']:.2f}"
        f"{'' if row['holds'] else '  OUTSIDE the tolerance'}",
        flush=True,
    )
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default: %(default)s)")
    p.add_argument("--out", type=Path, default=OUT, help="results file (default: %(default)s)")
    p.add_argument("--small", action="store_true", help="a narrow model of SD's layout, small shapes")
    p.add_argument("--defaults", action="store_true", help=f"only write {DEFAULTS_OUT.name} (no measuring)")
    args = p.parse_args(argv)
    if args.threads < 1:
        raise UserError(f"`threads` must be >= 1, got {args.threads}")
    if not args.small:
        write_json(DEFAULTS_OUT, {**provenance(), **course_defaults()})
        print(f"wrote {DEFAULTS_OUT}")
    if args.defaults:
        return
    from dlcv.stable_diffusion.config import sd_v1_config, tiny_config
    from dlcv.stable_diffusion.generation import prepare_for_inference
    from dlcv.stable_diffusion.memory import sampling_parts, weight_bytes, working_bytes
    from dlcv.stable_diffusion.textual_inversion import prepare_for_training
    from dlcv.stable_diffusion.tiny import build_tiny_sd

    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    if args.small:
        config = tiny_config(channels=(32, 64, 128, 128), layers_per_block=2, resolution=64)
        sampling, training = ((1, 64), (2, 64), (1, 128)), ((1, 64), (2, 64), (1, 128))
    else:
        config, sampling, training = sd_v1_config(), SAMPLING_SHAPES, TRAINING_SHAPES
    sd = build_tiny_sd(seed=0, config=config)
    cpu, fp32 = torch.device("cpu"), torch.float32
    weights = weight_bytes(sd.unet, sd.vae, sd.text_encoder)
    print(f"SD v1 networks with random weights: {weights / 1e9:.2f} GB (fp32)", flush=True)
    rows = []
    prepare_for_inference(sd, cpu)
    for batch, resolution in sampling:
        steps = sampling_steps(sd, batch, resolution)
        estimates = dict(zip(("unet", "vae"), sampling_parts(batch, resolution, fp32), strict=True))
        for part, step in steps.items():
            row = {"step": f"sampling: {part}", "batch": batch, "resolution": resolution}
            rows.append(check({**row, **measure(step), "estimate_bytes": estimates[part]}))
    prepare_for_training(sd, cpu, fp32)
    net = probe_token(sd)
    for batch, resolution in training:
        row = {"step": "textual inversion", "batch": batch, "resolution": resolution}
        estimate = working_bytes(batch, resolution, fp32, training=True)
        rows.append(
            check({**row, **measure(training_step(net, batch, resolution)), "estimate_bytes": estimate})
        )
    held = all(r["holds"] for r in rows)
    print(
        f"{'every' if held else 'NOT every'} step within the tolerance "
        f"{TOLERANCE[0]:.2f} - {TOLERANCE[1]:.2f}"
    )
    write_json(
        args.out,
        {
            **provenance(),
            "threads": args.threads,
            "torch": torch.__version__,
            "model": "small SD layout" if args.small else "SD v1 (full size), random weights",
            "dtype": "float32",
            "weight_bytes": weights,
            "tolerance": list(TOLERANCE),
            "held": held,
            "seconds": round(time.perf_counter() - began),
            "rows": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run(main)
