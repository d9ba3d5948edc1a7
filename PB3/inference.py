"""Problem 3 inference (``hw2_3.sh``): Stable Diffusion v1.4 with learned Textual Inversion tokens.

    python PB3/inference.py --json hw2_data/textual_inversion/input.json --out-dir OUT --ckpt sd-v1-4.ckpt
    python PB3/inference.py --prompt "a <new1> next to a <new2>" --out-dir OUT --ckpt sd-v1-4.ckpt

With --json: for every concept key and prompt index p of input.json, writes exactly
--n-images (25) images OUT/{key}/{p}/00.png .. 24.png at --resolution (512). With --prompt:
OUT/00.png .. for that text. Placeholder tokens (the json's token_name values and any
<...> written in a prompt; several per prompt are fine, multi-vector tokens too) get
their learned embeddings as described below. Sampling: DPM-Solver++(2M), 20 steps
(--solver ddim --steps 50 for SD's DDIM), classifier-free guidance 7.5, both halves in one
UNet forward; seeded (every prompt starts from the same --seed). Precision (--precision
auto): bf16 on GPUs of compute capability >= 8.0, fp16 below (e.g. the RTX 2080 Ti), fp32 on
the CPU. When the GPU's free memory is short, sliced VAE decoding and sliced attention are
switched on by themselves (one line says so). Runs fully offline: the SD v1 architecture
ships with the code, the tokenizer comes from the installed clip package.

"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from dlcv.cli import run
from dlcv.runtime import PRECISIONS
from dlcv.stable_diffusion.course import CKPT_ENV, GenerationJob, hw2_3
from dlcv.stable_diffusion.embeddings import LOOKUP_HELP, default_embedding_dirs
from dlcv.stable_diffusion.generation import DEFAULT_SOLVER, DEFAULT_STEPS, SOLVERS, SamplingOptions


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__ + LOOKUP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--json", help="the course's input.json: concept keys, token_name, prompt lists")
    what.add_argument("--prompt", help="free text instead of --json; images go to --out-dir directly")
    p.add_argument("--out-dir", required=True, help="output folder (created)")
    p.add_argument(
        "--ckpt",
        default=os.environ.get(CKPT_ENV),
        help=f"Stable Diffusion v1.x: CompVis .ckpt / .safetensors or a diffusers folder "
        f"(default: ${CKPT_ENV})",
    )
    p.add_argument(
        "--model-config",
        help="architecture JSON (SDConfig.save) for a non-v1 checkpoint, "
        "e.g. a tiny test model; default: SD v1.x",
    )
    p.add_argument(
        "--embeddings",
        action="append",
        default=[],
        metavar="DIR_OR_FILE",
        help="where learned embeddings are (repeatable; see the lookup below)",
    )
    p.add_argument("--n-images", type=int, default=25, help="images per prompt (default: %(default)s)")
    p.add_argument("--resolution", type=int, help="image side in pixels (default: the model's, 512 for v1)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="sampler steps (default: %(default)s)")
    p.add_argument(
        "--guidance",
        type=float,
        default=7.5,
        help="classifier-free guidance scale; 1 = no guidance (default: %(default)s)",
    )
    p.add_argument(
        "--solver",
        choices=SOLVERS,
        default=DEFAULT_SOLVER,
        help="dpm++ (DPM-Solver++(2M), the default) or ddim (SD's DDIM; use 50 steps)",
    )
    p.add_argument(
        "--eta",
        type=float,
        default=0.0,
        help="fresh noise per step: 0 = deterministic (default), 1 = DDPM-like (DDIM's eta; "
        "SDE-DPM-Solver++ with dpm++)",
    )
    p.add_argument("--negative-prompt", default="", help="text for the unconditional half (default: empty)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial latents (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=5, help="images per UNet batch (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="weights' dtype: auto = bf16 on GPUs of compute capability >= 8.0, fp16 below, fp32 on the CPU",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def build_job(args: argparse.Namespace) -> GenerationJob:
    """The job's settings from the flags (the job checks them)."""
    sampling = SamplingOptions(
        steps=args.steps, guidance=args.guidance, eta=args.eta, resolution=args.resolution, solver=args.solver
    )
    return GenerationJob(
        out_dir=Path(args.out_dir),
        ckpt=args.ckpt,
        json=args.json,
        prompt=args.prompt,
        model_config=args.model_config,
        embeddings=args.embeddings,
        defaults=default_embedding_dirs(__file__),  # this checkout's checkpoints/pb3, then the working dir's
        n_images=args.n_images,
        sampling=sampling,
        negative_prompt=args.negative_prompt,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        progress=not args.quiet,
    )


def main(argv: list[str] | None = None) -> None:
    job = build_job(build_parser().parse_args(argv))
    start = time.perf_counter()
    paths = hw2_3(job)
    print(
        f"wrote {len(paths)} images ({len(paths) // job.n_images} prompt(s) x {job.n_images}) to "
        f"{job.out_dir} in {time.perf_counter() - start:.1f}s"
    )


if __name__ == "__main__":
    run(main)
