"""The RTX 2080 Ti's SD UNet speed and hw2_3.sh's time by arithmetic from published figures.

    python bench/sd_unet_flops.py [--out docs/results/sd_unet_flops.json]

Counts the FLOPs of one full-size SD v1 UNet evaluation at 512 px (a 64x64 latent, batch 1) with
``torch.utils.flop_counter.FlopCounterMode`` on the meta device (seconds, no memory), divides the
card's published fp16 tensor throughput (FP32 accumulate, as PyTorch's kernels use) times the
fraction of peak SD's UNet reaches on a Turing card in a published measurement, and writes the
evaluations per second and hw2_3.sh's UNet time for 100 images at its defaults (the README's
figures; ``dlcv.stable_diffusion.generation.RTX_2080_TI_UNET_EVALS_PER_S`` must equal the file's
rounded figure, a test checks it). The sources and the assumption: :mod:`dlcv_bench.sd_speed`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dlcv.cli import run
from dlcv_bench.pb1 import REPO, provenance, write_json
from dlcv_bench.sd_speed import (
    ACCUMULATE,
    BATCH,
    LATENT,
    PREVIOUS_EVALS_PER_S,
    REFERENCE,
    RTX_2080_TI_BOOST_MHZ,
    RTX_2080_TI_TFLOPS,
    derive,
    hw2_3_seconds,
    unet_flops,
)

OUT = REPO / "docs" / "results" / "sd_unet_flops.json"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=OUT, help="results file (default: %(default)s)")
    args = p.parse_args(argv)
    flops = unet_flops()
    arithmetic = derive(flops["total"])
    evals = arithmetic["evals_per_s_rounded"]
    hw2_3 = hw2_3_seconds(evals)
    write_json(
        args.out,
        {
            **provenance(),
            "unet": {"model": "SD v1 (sd_v1_config)", "latent": LATENT, "batch": BATCH, "flops": flops},
            "card": {
                "name": "GeForce RTX 2080 Ti",
                "boost_mhz": RTX_2080_TI_BOOST_MHZ,
                "tflops": RTX_2080_TI_TFLOPS,
                "accumulate": ACCUMULATE,
                "source": "NVIDIA Turing GPU architecture whitepaper (2018), GeForce RTX 2080 Ti, reference "
                "boost clock; FP32 accumulate as PyTorch's fp16 cuBLAS/cuDNN kernels use",
            },
            "reference": REFERENCE,
            **arithmetic,
            "previous_evals_per_s": PREVIOUS_EVALS_PER_S,
            "hw2_3": {"images": 100, "rows": hw2_3},
        },
    )
    default = next(row for row in hw2_3 if row["default"])
    print(
        f"one SD v1 UNet evaluation at 512 px: {flops['total'] / 1e9:.1f} GFLOPs; the T4 measurement is "
        f"{arithmetic['utilization']:.1%} of its peak; at that fraction of {RTX_2080_TI_TFLOPS[ACCUMULATE]} "
        f"TFLOPS a 2080 Ti runs {arithmetic['evals_per_s']:.2f} evaluations/s (was {PREVIOUS_EVALS_PER_S}); "
        f"hw2_3.sh's 100 images: {default['evaluations']:,} evaluations = {default['seconds']:.0f} s"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run(main)
