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
from typing import TYPE_CHECKING

import torch

from dlcv.cli import (
    UserError,
    check_batch_size,
    child_path,
    existing_file,
    prepare_out_dir,
    refuse_links,
    run,
    warn,
)
from dlcv.runtime import PRECISIONS, configure_backends, pick_device, resolve_dtype
from dlcv.stable_diffusion.course_input import read_input_json
from dlcv.stable_diffusion.embeddings import (
    LOOKUP_HELP,
    add_embeddings,
    check_entries,
    check_vector_count,
    cut_placeholders,
    default_embedding_dirs,
    embedding_entries,
    expand_placeholders,
    find_embedding,
    token_stem,
)
from dlcv.stable_diffusion.generation import (
    DEFAULT_SOLVER,
    DEFAULT_STEPS,
    SOLVERS,
    SamplingOptions,
    check_output_folder,
    placeholders_in,
    prepare_for_inference,
    write_prompt_images,
)

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

CKPT_ENV = "SD_CKPT"

def train_hint(args: argparse.Namespace, token: str) -> str:
    """The command that trains the missing embedding into the default lookup folder."""
    ckpt = args.ckpt or "sd-v1-4.ckpt"
    if args.json:
        return f"python PB3/train.py --sd-ckpt {ckpt} --json {args.json}"
    return (f'python PB3/train.py --sd-ckpt {ckpt} --images IMAGES_DIR --token "{token}" '
            f"--out checkpoints/pb3/{token_stem(token)}")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__ + LOOKUP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--json", help="the course's input.json: concept keys, token_name, prompt lists")
    what.add_argument("--prompt", help="free text instead of --json; images go to --out-dir directly")
    p.add_argument("--out-dir", required=True, help="output folder (created)")
    p.add_argument("--ckpt", default=os.environ.get(CKPT_ENV),
                   help=f"Stable Diffusion v1.x: CompVis .ckpt / .safetensors or a diffusers folder "
                        f"(default: ${CKPT_ENV})")  # fmt: skip
    p.add_argument("--model-config", help="architecture JSON (SDConfig.save) for a non-v1 checkpoint, "
                                          "e.g. a tiny test model; default: SD v1.x")  # fmt: skip
    p.add_argument("--embeddings", action="append", default=[], metavar="DIR_OR_FILE",
                   help="where learned embeddings are (repeatable; see the lookup below)")  # fmt: skip
    p.add_argument("--n-images", type=int, default=25, help="images per prompt (default: %(default)s)")
    p.add_argument("--resolution", type=int, help="image side in pixels (default: the model's, 512 for v1)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="sampler steps (default: %(default)s)")
    p.add_argument("--guidance", type=float, default=7.5,
                   help="classifier-free guidance scale; 1 = no guidance (default: %(default)s)")  # fmt: skip
    p.add_argument("--solver", choices=SOLVERS, default=DEFAULT_SOLVER,
                   help="dpm++ (DPM-Solver++(2M), the default) or ddim (SD's DDIM; use 50 steps)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta, with --solver ddim; 0 = deterministic")
    p.add_argument("--negative-prompt", default="", help="text for the unconditional half (default: empty)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial latents (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=5, help="images per UNet batch (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="weights' dtype: auto = bf16 on GPUs of compute capability >= 8.0, fp16 below, "
                        "fp32 on the CPU")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _needed_tokens(args: argparse.Namespace) -> tuple[list[tuple[str, Path]], dict[str, str | None]]:
    """The ``(prompt, folder)`` jobs and the placeholder tokens they need (with their concept key)."""
    out = Path(args.out_dir)
    tokens: dict[str, str | None] = {}
    if args.json:
        jobs = []
        for concept in read_input_json(args.json):
            tokens.setdefault(concept.token, concept.key)
            if not any(concept.token in prompt for prompt in concept.prompts):
                warn(f"{args.json}: concept {concept.key!r}: its token {concept.token} appears in none of "
                     f"its {len(concept.prompts)} prompt(s), so its learned embedding changes nothing")
            for index, prompt in enumerate(concept.prompts):
                jobs.append((prompt, child_path(out, concept.key, "concept key") / str(index)))
    else:
        jobs = [(args.prompt, out)]
        for entry in args.embeddings:  # explicit TOKEN=FILE entries are always loaded
            name, sep, _ = entry.partition("=")
            if sep and name.strip() and not Path(entry).exists():
                tokens.setdefault(name.strip(), None)
    for prompt, _ in jobs:
        for token in placeholders_in(prompt):
            tokens.setdefault(token, None)
    return jobs, tokens


def _find_all(
    args: argparse.Namespace, tokens: dict[str, str | None]
) -> dict[str, tuple[torch.Tensor, Path]]:
    defaults = default_embedding_dirs(__file__)  # this checkout's checkpoints/pb3, then the working dir's
    entries = embedding_entries(args.embeddings, defaults=defaults)
    check_entries(entries, defaults)
    print(f"looking for embeddings in: {', '.join(entries)}")
    found = {}
    for token, key in tokens.items():
        hit = find_embedding(token, entries, key)
        if hit is None:
            concept = f" (concept {key!r})" if key is not None else ""
            raise UserError(
                f"no learned embedding for {token}{concept} in {', '.join(entries)}; train it with "
                f"`{train_hint(args, token)}` or pass --embeddings DIR_OR_FILE (see --help)"
            )
        found[token] = hit
    return found


def _warn_cut_placeholders(
    tokenizer: CLIPTokenizer, prompts: list[str], vectors: dict[str, int], ids: dict[str, list[int]]
) -> None:
    """One warning per prompt whose placeholder (of ``ids``) CLIP's 77-token truncation cuts."""
    for prompt in dict.fromkeys(prompts):
        cut = cut_placeholders(tokenizer, expand_placeholders(prompt, vectors), ids)
        if cut:
            which = ", ".join(f"{token} ({n} of {len(ids[token])} vector(s))" for token, n in cut.items())
            shown = prompt if len(prompt) <= 60 else prompt[:57] + "..."
            warn(f"prompt {shown!r} is longer than CLIP's {tokenizer.model_max_length} tokens and its "
                 f"truncation cuts {which}: the images will not show the learned concept fully; shorten "
                 "the prompt")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.n_images < 1:
        raise UserError(f"--n-images must be positive, got {args.n_images}")
    check_batch_size(args.batch_size)
    if not args.ckpt:
        raise UserError(f"--ckpt is required (the SD v1.4 checkpoint, e.g. sd-v1-4.ckpt) or set ${CKPT_ENV}")
    if not Path(args.ckpt).exists():
        raise UserError(f"Stable Diffusion checkpoint not found: {args.ckpt}")
    options = SamplingOptions(steps=args.steps, guidance=args.guidance, eta=args.eta,
                              resolution=args.resolution, solver=args.solver)  # fmt: skip
    options.check_numbers()
    jobs, tokens = _needed_tokens(args)
    found = _find_all(args, tokens)  # before the (slow) model load
    prepare_out_dir(args.out_dir, "--out-dir", create=False)
    folders = [folder.relative_to(args.out_dir) for _, folder in jobs]  # OUT/KEY/N: never through a link
    refuse_links(args.out_dir, folders, "output folder")
    for _, folder in jobs:
        check_output_folder(folder, args.n_images)
    from dlcv.stable_diffusion.config import load_config
    from dlcv.stable_diffusion.loading import load_stable_diffusion
    from dlcv.stable_diffusion.memory import auto_memory_plan

    config = load_config(existing_file(args.model_config, "--model-config")) if args.model_config else None
    device = pick_device(args.device)
    configure_backends(device)
    dtype = resolve_dtype(args.precision, device)
    start = time.perf_counter()
    sd = load_stable_diffusion(args.ckpt, config=config, device=device, dtype=dtype)
    resolution = options.check(sd)
    vectors, ids = {}, {}
    room = sd.tokenizer.model_max_length - 2  # besides the start and end tokens
    for token, (value, path) in found.items():
        ids |= add_embeddings(sd.tokenizer, sd.text_encoder, {token: value}, source=str(path))
        vectors[token] = value.shape[0]
        check_vector_count(token, vectors[token], room, str(path))
        print(f"{token}: {value.shape[0]} vector(s) from {path}")
    prepare_for_inference(sd, device)
    auto_memory_plan(sd, min(args.batch_size, args.n_images), resolution, options)
    fitting = {t: i for t, i in ids.items() if vectors[t] < room}  # check_vector_count told of the others
    _warn_cut_placeholders(sd.tokenizer, [prompt for prompt, _ in jobs], vectors, fitting)
    jobs = [(expand_placeholders(prompt, vectors), folder) for prompt, folder in jobs]
    print(f"{args.ckpt}: loaded in {time.perf_counter() - start:.1f}s on {device} ({str(dtype)[6:]}); "
          f"{options.solver} {options.steps} steps, guidance {options.guidance}")  # fmt: skip
    start = time.perf_counter()
    paths = write_prompt_images(sd, jobs, args.n_images, options, seed=args.seed,
                                batch_size=args.batch_size, negative_prompt=args.negative_prompt,
                                progress=not args.quiet)  # fmt: skip
    print(f"wrote {len(paths)} images ({len(jobs)} prompt(s) x {args.n_images}) to {args.out_dir} "
          f"in {time.perf_counter() - start:.1f}s")  # fmt: skip


if __name__ == "__main__":
    run(main)
