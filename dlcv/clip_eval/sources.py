"""Where CLIP weights come from: the ``--clip`` argument resolved to a local folder or file.

Accepted (all offline, nothing is downloaded):

* a Hugging Face folder, what ``openai/clip-vit-base-patch32`` looks like on disk
  (``config.json``, ``model.safetensors`` or ``pytorch_model.bin``, tokenizer files);
* a hub id such as ``openai/clip-vit-base-patch32`` that is already in the local
  Hugging Face cache (looked up with ``local_files_only``);
* OpenAI's checkpoint file (``ViT-B-32.pt``, as the ``clip`` package caches it in
  ``~/.cache/clip/``), or its model name ``ViT-B/32``; a folder holding ``ViT-B-32.pt``.

Without ``--clip`` the lookup order is :data:`DEFAULT_LOOKUP`. This module imports
neither torch nor transformers, so that ``--help`` and argument checks answer at once.
"""

from __future__ import annotations

from pathlib import Path

from dlcv.cli import PRECISIONS as PRECISIONS
from dlcv.cli import ArgumentError, UserError  # the --precision choices (auto: fp16 on CUDA for CLIP)

HF_ID = "openai/clip-vit-base-patch32"
OPENAI_FILES = {"ViT-B/32": "ViT-B-32.pt", "ViT-B/16": "ViT-B-16.pt", "ViT-L/14": "ViT-L-14.pt"}
OPENAI_CACHE = Path("~/.cache/clip")
#: Where weights are looked for, in order, when ``--clip`` is not given.
DEFAULT_LOOKUP = (
    "checkpoints/clip-vit-base-patch32",  # a Hugging Face folder, relative to the working dir
    "~/.cache/clip/ViT-B-32.pt",  # OpenAI's file where the clip package caches it
    HF_ID,  # the Hugging Face cache (HF_HOME), offline
)
WHERE_TO_PUT = (
    "put the Hugging Face folder of openai/clip-vit-base-patch32 (config.json, "
    "model.safetensors, tokenizer files) at checkpoints/clip-vit-base-patch32/ or OpenAI's "
    "ViT-B-32.pt at ~/.cache/clip/ViT-B-32.pt, or pass --clip PATH"
)
CLIP_HELP = (
    "CLIP weights: a Hugging Face folder (e.g. checkpoints/clip-vit-base-patch32), a hub id "
    "already in the local cache (openai/clip-vit-base-patch32), OpenAI's ViT-B-32.pt file, or "
    "the name ViT-B/32 (~/.cache/clip/ViT-B-32.pt). Default: the first that exists of "
    + ", ".join(DEFAULT_LOOKUP)
    + ". Never downloads."
)


def _hub_cache_folder(repo_id: str) -> Path | None:
    """The local snapshot folder of a hub id in the Hugging Face cache, or None (no network)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        return None


def resolve_clip_source(spec: str | Path | None) -> Path:
    """The folder or file that ``spec`` names (see the module docstring); UserError if none."""
    if spec is None:
        for candidate in DEFAULT_LOOKUP:
            try:
                return resolve_clip_source(candidate)
            except UserError:
                continue
        raise UserError(f"no CLIP weights found (looked in {', '.join(DEFAULT_LOOKUP)}): {WHERE_TO_PUT}")
    text = str(spec)
    if text in OPENAI_FILES:
        text = str(OPENAI_CACHE / OPENAI_FILES[text])
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        for name in OPENAI_FILES.values():
            if (path / name).is_file():
                return path / name
        raise ArgumentError(
            f"`clip` {spec}: the folder has neither config.json (Hugging Face format) nor an "
            f"OpenAI ViT-*.pt file; {WHERE_TO_PUT}"
        )
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        folder = _hub_cache_folder(text)
        if folder is not None:
            return folder
    raise ArgumentError(f"`clip` {spec}: no such file, folder or locally cached model; {WHERE_TO_PUT}")
