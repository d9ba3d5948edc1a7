"""CLIP's BPE tokenizer, built offline from the vocabulary the ``clip`` package ships.

OpenAI's CLIP (Radford et al., 2021) and Stable Diffusion v1 share one byte-level BPE
tokenizer: 49,408 entries made of the 256 byte symbols of ``bytes_to_unicode``, the
same symbols with the end-of-word marker ``</w>``, 48,894 merges, and the two special
tokens ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407). The ``clip`` package
(clip-anytorch) ships the merges as ``clip/bpe_simple_vocab_16e6.txt.gz``; this module
rebuilds the vocabulary from that file exactly as ``clip.simple_tokenizer.SimpleTokenizer``
does and hands it to transformers' :class:`~transformers.CLIPTokenizer`, so no file has
to come from the Hugging Face hub. The ``clip`` package itself is never imported (its
import pulls in ``pkg_resources``); only its data file is read.
"""

from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from pathlib import Path

from transformers import CLIPTokenizer

from dlcv.cli import UserError

BPE_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
VOCAB_SIZE = 49408
_NUM_MERGES = VOCAB_SIZE - 2 * 256 - 2  # 48,894 merges, as SimpleTokenizer keeps them


def clip_bpe_path() -> Path:
    """Where the installed ``clip`` package keeps its BPE merges (found without importing it)."""
    spec = importlib.util.find_spec("clip")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the 'clip' package (pip install clip-anytorch) is needed for CLIP's BPE vocabulary")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / BPE_FILE_NAME
        if path.is_file():
            return path
    raise UserError(f"the installed 'clip' package has no {BPE_FILE_NAME}; reinstall clip-anytorch")


def _bytes_to_unicode() -> list[str]:
    """The 256 printable stand-ins for the bytes 0..255, in GPT-2 / CLIP order.

    Printable Latin-1 bytes map to themselves; the others (controls, space, ...) map to
    code points from 256 upwards, so every byte string becomes a printable string.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    order, chars = list(printable), list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            order.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """CLIP's token -> id mapping (49,408 entries) and its ordered merges, from the clip package."""
    lines = gzip.open(clip_bpe_path()).read().decode("utf-8").split("\n")
    # The first line is a version header; SimpleTokenizer keeps the next 48,894 merges.
    merges = tuple(tuple(line.split()) for line in lines[1 : 1 + _NUM_MERGES])
    symbols = _bytes_to_unicode()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += [START_TOKEN, END_TOKEN]
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise UserError(f"{clip_bpe_path()}: expected {VOCAB_SIZE} tokens, built {len(vocab)}")
    return vocab, merges  # type: ignore[return-value]


def offline_clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """A fresh transformers CLIP tokenizer equal to OpenAI's, built without network access.

    Pads with ``<|endoftext|>`` as Stable Diffusion v1 and OpenAI CLIP do. Each call
    returns a new object, so adding placeholder tokens to one does not touch another.
    """
    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        unk_token=END_TOKEN,
        bos_token=START_TOKEN,
        eos_token=END_TOKEN,
        pad_token=END_TOKEN,
        model_max_length=model_max_length,
    )


def _has_tokenizer_files(folder: Path) -> bool:
    if (folder / "tokenizer.json").is_file():
        return True
    return (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()


def load_clip_tokenizer(directory: str | Path | None = None, model_max_length: int = 77) -> CLIPTokenizer:
    """The tokenizer files of ``directory`` (or its ``tokenizer/`` subfolder) when present.

    A Hugging Face CLIP folder keeps ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``
    at its top level, a diffusers Stable Diffusion folder in ``tokenizer/``. Without such
    files (or without a directory) the offline tokenizer built from the clip package is
    returned. Nothing is downloaded.
    """
    if directory is not None:
        root = Path(directory)
        for folder in (root, root / "tokenizer"):
            if folder.is_dir() and _has_tokenizer_files(folder):
                try:
                    tok = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
                except (OSError, ValueError) as err:
                    raise UserError(f"cannot read the tokenizer files in {folder}: {err}") from None
                tok.model_max_length = model_max_length
                return tok
    return offline_clip_tokenizer(model_max_length)
