"""Problem 3: Textual Inversion on Stable Diffusion v1.4 (one token per concept), fully offline.

One concept:
    python PB3/train.py --sd-ckpt sd-v1-4.ckpt --images hw2_data/textual_inversion/0 \\
        --token "<new1>" --init-word dog --object --out checkpoints/pb3/new1
Every concept of the course's input.json (images in DATA/{key}/, output OUT/{key}/):
    python PB3/train.py --sd-ckpt sd-v1-4.ckpt --json hw2_data/textual_inversion/input.json
Data-parallel (one process per GPU, same flags; --batch-size is per GPU):
    torchrun --nnodes 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:0 --local-addr 127.0.0.1 \\
        --nproc_per_node 4 PB3/train.py --sd-ckpt sd-v1-4.ckpt --json ...

Writes to each output folder: learned_embeds.safetensors ({token: (vectors, 768)}, the diffusers
format: what PB3/inference.py and hw2_3.sh look up, and what diffusers' load_textual_inversion
reads), checkpoint.pt (continue with --resume), metrics.jsonl and samples/step_*.png (validation
images, one row per prompt).

With --json, a concept is a style when one of its prompts says "... style of <token>", else an
object; an entry may say so itself ("kind": "style"), and --kind KEY=style overrides both. Its init
word is --init-word when given, else the entry's "src_image" ("dog", "David Revoy"); a several-token
init word starts from the rescaled mean of its token embeddings. Images come from DATA/{key}/ (else
DATA/{src_image}/).

Precision (--precision auto): the frozen UNet in bf16 on GPUs of compute capability >= 8.0, in fp16
below (e.g. the RTX 2080 Ti, with a GradScaler), fp32 on the CPU (--precision fp32: on CUDA too);
the embedding is always fp32. When the GPU's free memory is short, gradient checkpointing (then
sliced attention) is switched on by itself, and one line says so. Validation images use hw2_3.sh's
sampler (DPM-Solver++, 20 steps), so what you watch is what is graded.

Learning rate: --lr is the AdamW rate of the embedding itself (default 5e-3 for the default batch of
4), with a short linear warm-up and a cosine decay; --scale-lr multiplies it by batch x grad-accum x
processes, the original paper's convention (its 5e-3 base then gives 0.02 for a batch of 4).
"""

from __future__ import annotations

import argparse
import os

from dlcv.cli import run
from dlcv.stable_diffusion.course import CKPT_ENV, ConceptPlan
from dlcv.stable_diffusion.embeddings import EMBEDDINGS_SUBDIR, default_embedding_dirs
from dlcv.stable_diffusion.ti_job import (
    FLAGS,
    LearnJob,
    add_learning_flags,
    learn_concepts,
    learning_settings,
)

#: checkpoints/pb3 of this checkout: where PB3/inference.py (and hw2_3.sh) look first.
DEFAULT_EMBEDDINGS_DIR = default_embedding_dirs(__file__)[0]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--sd-ckpt",
        "--ckpt",
        dest="sd_ckpt",
        default=os.environ.get(CKPT_ENV),
        help=f"Stable Diffusion v1.x: CompVis .ckpt / .safetensors or a diffusers folder "
        f"(default: ${CKPT_ENV})",
    )
    p.add_argument(
        "--model-config",
        help="architecture JSON (SDConfig.save) for a non-v1 checkpoint "
        "file, e.g. a tiny test model; default: SD v1.x",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--images", help="folder of the concept's images (one concept; needs --token)")
    what.add_argument("--json", help="the course's input.json: train every concept it lists")
    p.add_argument(
        "--data",
        help="with --json: folder holding one image folder per concept key (default: the json's folder)",
    )
    p.add_argument("--keys", nargs="+", help="with --json: train only these concept keys")
    p.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="KEY=KIND",
        help="with --json: force a concept's kind (object or style); repeatable",
    )
    p.add_argument("--token", help='placeholder token to learn, e.g. "<new1>" (with --images)')
    p.add_argument(
        "--init-word",
        help="word(s) whose embedding starts the token (default: the json's "
        "src_image, else 'object' / 'painting')",
    )
    kind = p.add_mutually_exclusive_group()
    kind.add_argument(
        "--object",
        dest="style",
        action="store_false",
        default=None,
        help="object captions ('a photo of a <token>'); the default with --images",
    )
    kind.add_argument(
        "--style",
        dest="style",
        action="store_true",
        help="style captions ('a painting in the style of <token>'); with --json: for all",
    )
    p.add_argument(
        "--out",
        help=f"output folder (default: this checkout's {EMBEDDINGS_SUBDIR}/NAME with "
        f"--images, NAME = the token without <>; {EMBEDDINGS_SUBDIR} with --json: one per key)",
    )
    add_learning_flags(p)
    return p


def build_job(args: argparse.Namespace) -> LearnJob:
    """The job's settings from the flags (the job checks them)."""
    plan = ConceptPlan(
        DEFAULT_EMBEDDINGS_DIR,
        images=args.images,
        json=args.json,
        data=args.data,
        keys=args.keys,
        kind=args.kind,
        token=args.token,
        init_word=args.init_word,
        style=args.style,
        out=args.out,
    )
    ti, train = learning_settings(args)
    return LearnJob(args.sd_ckpt, plan, ti, train, model_config=args.model_config, scale_lr=args.scale_lr)


def main(argv: list[str] | None = None) -> None:
    learned = learn_concepts(build_job(build_parser().parse_args(argv)))
    if learned:
        print(f"learned {len(learned)} concept(s): {', '.join(c.token for c in learned)}")


if __name__ == "__main__":
    run(main, FLAGS)
