"""Problem 3's course jobs: ``hw2_3.sh``'s generation (:func:`hw2_3`) and the plan of the concepts
Textual Inversion learns (:class:`ConceptPlan`), both read from the course's ``input.json``.

``PB3/inference.py`` (behind ``hw2_3.sh``) builds a :class:`GenerationJob` from its flags and
calls :func:`hw2_3`; ``PB3/train.py`` builds a :class:`ConceptPlan` and hands it to
:func:`dlcv.stable_diffusion.ti_job.learn_concepts`. Every input is checked before the (slow)
model load; a bad one is one line (arguments in backticks, shown as flags by :func:`dlcv.cli.run`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dlcv.cli import (
    ArgumentError,
    UserError,
    check_batch_size,
    child_path,
    existing_file,
    prepare_out_dir,
    refuse_links,
    warn,
)
from dlcv.runtime import cuda_backends, pick_device, resolve_dtype
from dlcv.stable_diffusion.course_input import read_input_json
from dlcv.stable_diffusion.embeddings import (
    add_learned_tokens,
    check_entries,
    embedding_entries,
    expand_placeholders,
    find_embeddings,
    token_stem,
    warn_cut_placeholders,
)
from dlcv.stable_diffusion.generation import (
    SamplingOptions,
    check_output_folders,
    placeholders_in,
    prepare_for_inference,
    write_prompt_images,
)
from dlcv.stable_diffusion.memory import auto_memory_plan
from dlcv.stable_diffusion.ti_data import KINDS, guess_kind
from dlcv.training.run_dir import refuse_run_links
from dlcv.training.trainer import CHECKPOINT_NAME

if TYPE_CHECKING:  # diffusers and transformers load with the model
    from dlcv.stable_diffusion.loading import StableDiffusion

#: The environment variable naming the Stable Diffusion checkpoint when no flag does.
CKPT_ENV = "SD_CKPT"
#: A concept's init word when neither the flag nor the json's ``src_image`` gives one.
DEFAULT_INIT = {"object": "object", "style": "painting"}


def check_sd_checkpoint(path: str | None, name: str) -> Path:
    """``path`` (argument ``name``) as an existing Stable Diffusion checkpoint, else one line."""
    if not path:
        raise ArgumentError(
            f"`{name}` is required (the SD v1.4 checkpoint, e.g. sd-v1-4.ckpt, or a "
            f"diffusers folder) or set ${CKPT_ENV}"
        )
    if not Path(path).exists():
        raise UserError(f"Stable Diffusion checkpoint not found: {path}")
    return Path(path)


def load_model(ckpt: str | Path, model_config: str | None, **kwargs: object) -> StableDiffusion:
    """``load_stable_diffusion`` of ``ckpt`` in ``model_config``'s architecture (a JSON; default SD v1)."""
    from dlcv.stable_diffusion.config import load_config
    from dlcv.stable_diffusion.loading import load_stable_diffusion

    config = load_config(existing_file(model_config, "--model-config")) if model_config else None
    return load_stable_diffusion(ckpt, config=config, **kwargs)


# --- hw2_3.sh: 25 images per prompt of input.json ------------------------------------------------


@dataclass
class GenerationJob:
    """The settings of ``hw2_3.sh`` / ``PB3/inference.py``.

    With ``json`` (the course's input.json): ``n_images`` images ``out_dir/{key}/{p}/00.png ..`` per
    concept key and prompt index ``p``; with ``prompt``: ``out_dir/00.png ..`` for that text.
    Placeholder tokens (the json's ``token_name`` values and any ``<...>`` in a prompt) get their
    learned embeddings from ``embeddings`` entries, ``$PB3_EMBEDDINGS`` and then the ``defaults``
    folders (:data:`~dlcv.stable_diffusion.embeddings.LOOKUP_HELP`).
    """

    out_dir: Path
    ckpt: str | None
    json: str | None = None
    prompt: str | None = None
    model_config: str | None = None
    embeddings: list[str] = field(default_factory=list)
    defaults: list[Path] | None = None  # default lookup folders: default_embedding_dirs(the script)
    n_images: int = 25
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    negative_prompt: str = ""
    seed: int = 0
    batch_size: int = 5
    device: str = "auto"
    precision: str = "auto"
    progress: bool = True

    def check(self) -> None:
        """What can be checked before anything is read."""
        if (self.json is None) == (self.prompt is None):
            raise ArgumentError("give one of `json` and `prompt`")
        if self.n_images < 1:
            raise ArgumentError(f"`n_images` must be positive, got {self.n_images}")
        check_batch_size(self.batch_size)
        check_sd_checkpoint(self.ckpt, "ckpt")
        self.sampling.check_numbers()

    def train_hint(self, token: str) -> str:
        """The command that trains ``token``'s missing embedding into the default lookup folder."""
        ckpt = self.ckpt or "sd-v1-4.ckpt"
        if self.json:
            return f"python PB3/train.py --sd-ckpt {ckpt} --json {self.json}"
        return (
            f'python PB3/train.py --sd-ckpt {ckpt} --images IMAGES_DIR --token "{token}" '
            f"--out checkpoints/pb3/{token_stem(token)}"
        )

    def prompt_folders(self) -> tuple[list[tuple[str, Path]], dict[str, str | None]]:
        """The ``(prompt, folder)`` pairs and the placeholder tokens they need (with their concept key)."""
        out = Path(self.out_dir)
        tokens: dict[str, str | None] = {}
        if self.json:
            jobs = []
            for concept in read_input_json(self.json):
                tokens.setdefault(concept.token, concept.key)
                if not any(concept.token in prompt for prompt in concept.prompts):
                    warn(
                        f"{self.json}: concept {concept.key!r}: its token {concept.token} appears in none "
                        f"of its {len(concept.prompts)} prompt(s), so its learned embedding changes nothing"
                    )
                for index, prompt in enumerate(concept.prompts):
                    jobs.append((prompt, child_path(out, concept.key, "concept key") / str(index)))
        else:
            jobs = [(self.prompt, out)]
            for entry in self.embeddings:  # explicit TOKEN=FILE entries are always loaded
                name, sep, _ = entry.partition("=")
                if sep and name.strip() and not Path(entry).exists():
                    tokens.setdefault(name.strip(), None)
        for prompt, _ in jobs:
            for token in placeholders_in(prompt):
                tokens.setdefault(token, None)
        return jobs, tokens


def hw2_3(job: GenerationJob) -> list[Path]:
    """The whole of ``hw2_3.sh``: check every input, find the learned embeddings, load Stable
    Diffusion with them, write ``job.n_images`` PNGs per prompt; returns the paths written.

    The device, its TF32 setting and the dtype (:mod:`dlcv.runtime`'s precision rule) are
    resolved here, once. When the GPU's free memory is short, sliced VAE decoding and sliced
    attention are switched on by themselves (one line says so).
    """
    job.check()
    prompts, tokens = job.prompt_folders()
    entries = embedding_entries(job.embeddings, defaults=job.defaults)
    check_entries(entries, job.defaults)
    print(f"looking for embeddings in: {', '.join(entries)}")
    found = find_embeddings(tokens, entries, job.train_hint)  # before the (slow) model load
    check_output_folders(job.out_dir, [folder for _, folder in prompts], job.n_images, "--out-dir")
    device = pick_device(job.device)
    with cuda_backends(device):  # TF32 and cuDNN autotuning for this job only, restored after
        dtype = resolve_dtype(job.precision, device)
        start = time.perf_counter()
        sd = load_model(job.ckpt, job.model_config, device=device, dtype=dtype)
        resolution = job.sampling.check(sd)
        vectors, ids = add_learned_tokens(sd, found)
        prepare_for_inference(sd, device)
        auto_memory_plan(sd, min(job.batch_size, job.n_images), resolution, job.sampling)
        warn_cut_placeholders(sd.tokenizer, [prompt for prompt, _ in prompts], vectors, ids)
        prompts = [(expand_placeholders(prompt, vectors), folder) for prompt, folder in prompts]
        options = job.sampling
        print(
            f"{job.ckpt}: loaded in {time.perf_counter() - start:.1f}s on {device} ({str(dtype)[6:]}); "
            f"{options.solver} {options.steps} steps, guidance {options.guidance}"
        )
        return write_prompt_images(
            sd,
            prompts,
            job.n_images,
            options,
            seed=job.seed,
            batch_size=job.batch_size,
            negative_prompt=job.negative_prompt,
            progress=job.progress,
        )


# --- PB3/train.py: which concepts to learn ---------------------------------------------------------


@dataclass
class ConceptJob:
    """One concept to learn: where its images are, its token and kind, where it goes."""

    name: str
    images: Path
    token: str
    init_word: str
    kind: str
    out: Path
    base: Path | None = None  # the folder ``out`` was named inside of (not chosen by the user)


def kind_overrides(items: Sequence[str]) -> dict[str, str]:
    """``["0=style"]`` -> ``{"0": "style"}``; anything else than ``KEY=object|style`` is refused."""
    out = {}
    for item in items:
        key, sep, kind = item.partition("=")
        if not sep or kind not in KINDS:
            raise ArgumentError(f"`kind` {item!r}: expected KEY=object or KEY=style")
        out[key] = kind
    return out


@dataclass
class ConceptPlan:
    """Which concepts ``PB3/train.py`` learns: one from an ``images`` folder with its ``token``, or every
    concept of the course's ``json`` (images in ``data/{key}/``, default the json's folder, else
    ``data/{src_image}/``), optionally only ``keys``.

    A json concept's kind: ``kind`` overrides (``KEY=style``), else the entry's own ``"kind"``, else
    ``style`` (True: all styles, False: all objects), else a style when one of its prompts says
    "... style of <token>" (:func:`~dlcv.stable_diffusion.ti_data.guess_kind`). Its init word:
    ``init_word``, else the entry's ``src_image`` ("dog", "David Revoy"), else :data:`DEFAULT_INIT`.
    Outputs go to ``out`` (one folder, or with ``json`` a subfolder per key), by default inside
    ``default_out`` (``checkpoints/pb3`` of the checkout: where ``hw2_3.sh`` looks first).
    """

    default_out: Path
    images: str | None = None
    json: str | None = None
    data: str | None = None
    keys: list[str] | None = None
    kind: list[str] = field(default_factory=list)
    token: str | None = None
    init_word: str | None = None
    style: bool | None = None
    out: str | None = None

    def concepts(self) -> list[ConceptJob]:
        """The concepts, checked (their images' folders exist; tokens are distinct)."""
        if self.init_word is not None and not self.init_word.strip():
            raise ArgumentError("`init_word` must be a word or words (e.g. dog), got an empty string")
        if (self.json is None) == (self.images is None):
            raise ArgumentError("give one of `images` and `json`")
        if self.json:
            if self.token:
                raise ArgumentError(
                    "`token` is for `images`; with `json` the tokens come from the json's token_name"
                )
            return self._json_concepts()
        if self.data or self.keys or self.kind:
            raise ArgumentError("`data`, `keys` and `kind` go with `json`")
        if not self.token:
            raise ArgumentError('`token` is required with `images` (e.g. `token` "<new1>")')
        images = Path(self.images)
        if not images.is_dir():
            raise ArgumentError(f"`images` folder not found: {images}")
        kind = "style" if self.style else "object"
        base = None if self.out else self.default_out
        out = Path(self.out) if self.out else self.default_out / token_stem(self.token)
        init = self.init_word or DEFAULT_INIT[kind]
        return [ConceptJob(self.token, images, self.token, init, kind, out, base)]

    def _json_concepts(self) -> list[ConceptJob]:
        path = existing_file(self.json, "--json input file")
        concepts = read_input_json(path)
        data = Path(self.data) if self.data else path.parent
        if not data.is_dir():
            raise ArgumentError(f"`data` folder not found: {data}")
        keys = [c.key for c in concepts]
        for key in self.keys or []:
            if key not in keys:
                raise ArgumentError(f"`keys`: {path} has no concept {key!r} (it has {', '.join(keys)})")
        forced = kind_overrides(self.kind)
        tokens = [c.token for c in concepts]
        if len(set(tokens)) != len(tokens):
            raise UserError(f"{path}: concepts share a token_name ({', '.join(tokens)})")
        out = Path(self.out) if self.out else self.default_out
        jobs = []
        for concept in concepts:
            if self.keys and concept.key not in self.keys:
                continue
            src = concept.src_image
            kind = forced.get(concept.key) or concept.kind
            if kind is None and self.style is not None:
                kind = "style" if self.style else "object"
            kind = kind or guess_kind(concept.prompts, concept.token)
            if kind not in KINDS:
                raise UserError(
                    f"{path}: concept {concept.key!r} has kind {kind!r}; expected object or style"
                )
            folder = child_path(data, concept.key, "concept key")
            if not folder.is_dir() and src:
                with contextlib.suppress(UserError):  # else src_image ("dog") may name the image folder
                    alt = child_path(data, src, "src_image")
                    folder = alt if alt.is_dir() else folder
            if not folder.is_dir():
                raise UserError(
                    f"images of concept {concept.key!r} ({concept.token}) not found: {data / concept.key}"
                )
            init = self.init_word or src or DEFAULT_INIT[kind]
            target = child_path(out, concept.key, "concept key")
            jobs.append(ConceptJob(concept.key, folder, concept.token, init, kind, target, out))
        return jobs


def check_concept_folder(job: ConceptJob, resume: bool, overwrite: bool) -> None:
    """The one check of a concept's output folder, before the model loads: no link where the
    outputs go (nor where a key or token named the folder), writable, and no checkpoint of
    another run unless ``resume`` or ``overwrite``."""
    if job.base is not None:  # a folder named after a key or token: never a link planted there
        refuse_links(job.base, [job.out.relative_to(job.base)], "output folder")
    refuse_run_links(job.out)
    prepare_out_dir(job.out, "output folder", create=False)
    if (job.out / CHECKPOINT_NAME).exists() and not (resume or overwrite):
        raise ArgumentError(
            f"{job.out / CHECKPOINT_NAME} already exists: pass `resume` to continue it, "
            "or choose another `out`"
        )
