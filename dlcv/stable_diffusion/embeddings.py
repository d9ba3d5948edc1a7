"""Textual Inversion embeddings: read every common file format, add them to a model.

Textual Inversion (Gal et al., "An Image is Worth One Word", ICLR 2023) learns the
input embedding of a new placeholder token. Tools save it differently:

* diffusers: ``learned_embeds.safetensors`` / ``.bin``, ``{token: (D,) or (n, D)}``;
* the paper's EmbeddingManager ``.pt``: ``{"string_to_token": ..., "string_to_param":
  ParameterDict({token: (n, D)})}``;
* the AUTOMATIC1111 web UI ``.pt``: ``{"string_to_param": {"*": (n, D)}, "name": ...}``
  (or ``.safetensors`` with ``emb_params``); the token is the file's stem;
* a bare tensor ``(n, D)`` saved with ``torch.save`` (the token is given by the caller,
  else the file's stem).

All are read with :func:`dlcv.stable_diffusion.safe_load.load_tensors` (no code from
the file runs). A token with ``n > 1`` vectors becomes ``n`` tokens ``tok, tok_1, ..,
tok_{n-1}`` (diffusers' convention) and prompts are expanded with
:func:`expand_placeholders`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dlcv.cli import UserError, warn
from dlcv.stable_diffusion.safe_load import Stub, load_tensors

if TYPE_CHECKING:  # transformers is imported by whoever builds the model
    from transformers import CLIPTextModel, CLIPTokenizer

    from dlcv.stable_diffusion.loading import StableDiffusion

EMBEDDING_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
#: Larger values are refused: CLIP's token embeddings hold values below 1, and fp16 overflows
#: (to black images) from 65504, so such an embedding is damaged, not learned.
MAX_EMBEDDING_VALUE = 1e4
#: More vectors than this get a warning: Textual Inversion learns 1 to a few (the paper: 1;
#: more vectors fit less of the prompt into CLIP's 77 tokens).
MANY_VECTORS = 16


def _as_matrix(value: Any, token: str, path: Path) -> torch.Tensor:
    if isinstance(value, Stub) and isinstance(value.args, tuple) and value.args:
        value = value.args[0]  # a Parameter subclass pickled by reduce
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise UserError(f"{path}: the embedding of {token!r} is not a float tensor")
    value = value.detach().to("cpu", torch.float32)
    if value.ndim == 1:
        value = value[None]
    if value.ndim != 2 or value.shape[0] < 1:
        raise UserError(
            f"{path}: the embedding of {token!r} has shape {tuple(value.shape)}, "
            "expected (D,) or (vectors, D)"
        )
    if not torch.isfinite(value).all():
        raise UserError(f"{path}: the embedding of {token!r} holds NaN or infinite values")
    largest = float(value.abs().max())
    if largest > MAX_EMBEDDING_VALUE:
        raise UserError(
            f"{path}: the embedding of {token!r} holds values up to {largest:.3g}, far beyond a "
            f"text embedding's (CLIP's are below 1; at most {MAX_EMBEDDING_VALUE:g} is "
            "accepted): a damaged file, or not an embedding"
        )
    return value.contiguous()


def _param_mapping(obj: Any) -> Mapping[str, Any] | None:
    """The token -> tensor mapping of a ``string_to_param`` entry (dict or ParameterDict)."""
    if isinstance(obj, Mapping):
        return obj
    if isinstance(obj, Stub):  # a pickled torch.nn.ParameterDict (any torch version)
        state = obj.state if isinstance(obj.state, dict) else {}
        params = state.get("_parameters")
        if isinstance(params, Mapping):
            return params
        if obj.items:
            return obj.items
    if isinstance(obj, torch.nn.ParameterDict):
        return dict(obj.items())
    return None


def read_embedding_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Every embedding in ``path`` as ``{token: (vectors, D) float32}``.

    Nameless embeddings (a bare tensor, A1111's ``"*"``) are named after the file's stem.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"embedding file not found: {path}")
    data = load_tensors(path)
    stem = path.stem
    if isinstance(data, torch.Tensor):
        return {stem: _as_matrix(data, stem, path)}
    if not isinstance(data, Mapping):
        raise UserError(f"{path}: not a Textual Inversion embedding (found {type(data).__name__})")
    if "string_to_param" in data:  # EmbeddingManager or AUTOMATIC1111
        params = _param_mapping(data["string_to_param"])
        if not params:
            raise UserError(f"{path}: 'string_to_param' holds no embeddings")
        return {
            (stem if str(tok) == "*" else str(tok)): _as_matrix(value, str(tok), path)
            for tok, value in params.items()
        }
    if set(data) == {"emb_params"}:  # AUTOMATIC1111 .safetensors
        return {stem: _as_matrix(data["emb_params"], stem, path)}
    tensors = {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserError(f"{path}: not a Textual Inversion embedding (no tensors among {list(data)[:5]})")
    return {tok: _as_matrix(v, tok, path) for tok, v in tensors.items()}


def load_embedding(path: str | Path, token: str | None = None) -> tuple[str, torch.Tensor]:
    """One ``(token, (vectors, D))`` from ``path``.

    With ``token`` given: the embedding stored under that name, or the file's only
    embedding renamed to it. Without: the file's only embedding.
    """
    found = read_embedding_file(path)
    if token is not None and token in found:
        return token, found[token]
    if len(found) == 1:
        name, value = next(iter(found.items()))
        return (token or name), value
    raise UserError(
        f"{path} holds {len(found)} embeddings ({', '.join(sorted(found))}); "
        f"name the one to use{'' if token is None else f' (none is called {token!r})'}"
    )


def placeholder_names(token: str, vectors: int) -> list[str]:
    """The tokenizer entries of a ``vectors``-vector placeholder: ``tok, tok_1, .., tok_{n-1}``."""
    return [token] + [f"{token}_{i}" for i in range(1, vectors)]


def expand_placeholders(text: str, vectors: Mapping[str, int]) -> str:
    """Write each multi-vector placeholder of ``text`` as its ``n`` tokens.

    ``"a <x> dog"`` with ``{"<x>": 3}`` becomes ``"a <x> <x>_1 <x>_2 dog"``; text that is
    already expanded is left as it is.
    """
    for token in sorted(vectors, key=len, reverse=True):
        n = vectors[token]
        if n > 1:
            # not a <x>_k itself, and not the head of an already expanded "<x> <x>_1"
            pattern = re.escape(token) + r"(?!_\d)(?!\s*" + re.escape(f"{token}_1") + ")"
            text = re.sub(pattern, lambda _m, t=token, k=n: " ".join(placeholder_names(t, k)), text)
    return text


def check_vector_count(token: str, vectors: int, room: int, source: str) -> None:
    """Warn (one line) when ``token``'s embedding from ``source`` has more than
    :data:`MANY_VECTORS` vectors: ``room`` (the prompt's tokens besides its start and end, 75
    for CLIP) is shared with the rest of the prompt, and past it the placeholder is cut."""
    if vectors <= MANY_VECTORS:
        return
    if vectors >= room:
        fit = f"more than the {room} tokens a prompt holds: every prompt with it is cut short"
    else:
        fit = f"leaving {room - vectors} of a prompt's {room} tokens for the rest of it"
    warn(
        f"{source}: the embedding of {token} has {vectors} vectors (Textual Inversion learns 1 to a few), "
        f"{fit}"
    )


def cut_placeholders(tokenizer: CLIPTokenizer, prompt: str, ids: Mapping[str, list[int]]) -> dict[str, int]:
    """The placeholders of ``prompt`` (``ids``: their token ids, :func:`add_embeddings`) whose
    vectors CLIP's truncation to ``tokenizer.model_max_length`` tokens cuts off, with how many
    of their vectors are lost; empty when the whole prompt fits."""
    full = tokenizer(prompt, add_special_tokens=True, truncation=False).input_ids
    limit = tokenizer.model_max_length
    if len(full) <= limit:
        return {}
    lost = full[limit - 1 :]  # what truncation drops: the end-of-text token takes the last place
    cut = {}
    for token, token_ids in ids.items():
        gone = sum(lost.count(i) for i in token_ids)
        if gone:
            cut[token] = gone
    return cut


def check_new_token(tokenizer: CLIPTokenizer, token: str) -> None:
    """Refuse a placeholder that the tokenizer already knows as one token."""
    if not token.strip() or token != token.strip():
        raise UserError(f"placeholder token {token!r} must be non-empty and have no outer spaces")
    ids = tokenizer(token, add_special_tokens=False).input_ids
    if token in tokenizer.get_vocab() or len(ids) == 1:
        raise UserError(
            f"placeholder token {token!r} is already in the tokenizer's vocabulary; "
            "choose a new string such as '<my-concept>'"
        )


def add_embeddings(
    tokenizer: CLIPTokenizer,
    text_encoder: CLIPTextModel,
    embeddings: Mapping[str, torch.Tensor],
    source: str = "",
) -> dict[str, list[int]]:
    """Add placeholder tokens to ``tokenizer`` and their rows to ``text_encoder``.

    Returns ``{token: [ids of its vectors]}``. The text encoder's other rows are left
    untouched (the table is extended, not re-initialised). Raises :class:`UserError` when a
    width does not match the text encoder or a token is already in the vocabulary.
    """
    table = text_encoder.get_input_embeddings()
    width = table.weight.shape[1]
    where = f" from {source}" if source else ""
    names: dict[str, list[str]] = {}
    for token, value in embeddings.items():
        if value.ndim != 2 or value.shape[1] != width:
            raise UserError(
                f"embedding {token!r}{where} has width {value.shape[-1]}, but the text encoder expects "
                f"{width} (SD v1 uses 768; 1024 would be an SD 2.x embedding)"
            )
        for name in placeholder_names(token, value.shape[0]):
            check_new_token(tokenizer, name)
        names[token] = placeholder_names(token, value.shape[0])
    all_names = [n for ns in names.values() for n in ns]
    if len(set(all_names)) != len(all_names):
        raise UserError(f"embedding tokens{where} collide: {all_names}")
    if not all_names:
        return {}
    tokenizer.add_tokens(all_names)
    new_size = len(tokenizer)
    old = table.weight
    if new_size > old.shape[0]:
        grown = torch.nn.Embedding(new_size, width, device=old.device, dtype=old.dtype)
        with torch.no_grad():
            grown.weight[: old.shape[0]] = old
        grown.weight.requires_grad_(old.requires_grad)
        text_encoder.set_input_embeddings(grown)
        text_encoder.config.vocab_size = new_size
        table = grown
    ids = {token: tokenizer.convert_tokens_to_ids(ns) for token, ns in names.items()}
    with torch.no_grad():
        for token, value in embeddings.items():
            table.weight[ids[token]] = value.to(table.weight.device, table.weight.dtype)
    return ids


# --- finding learned embeddings on disk -------------------------------------------------------

#: Where PB3/train.py writes and PB3/inference.py looks by default, inside a checkout.
EMBEDDINGS_SUBDIR = Path("checkpoints") / "pb3"
EMBEDDINGS_ENV = "PB3_EMBEDDINGS"
#: The file a Textual Inversion run writes in its output folder (diffusers' name and format).
LEARNED_EMBEDS = "learned_embeds.safetensors"
#: The names a folder's learned embedding is looked up under: ours, then diffusers' older pickle.
LEARNED_EMBEDS_NAMES = (LEARNED_EMBEDS, "learned_embeds.bin")
LOOKUP_HELP = """\
Where a placeholder's embedding is looked up, first match wins: each --embeddings entry in
order, then each entry of $PB3_EMBEDDINGS (separated by ':'), then checkpoints/pb3/ of the
checkout this script is in, then checkpoints/pb3/ of the working directory. An entry is
  TOKEN=FILE  that file, for that token (any format; e.g. a bare tensor: "<new1>=dog.pt");
  FILE        a file holding the token by name (diffusers learned_embeds.safetensors / .bin,
              EmbeddingManager .pt, ...);
  DIR         for token <new1> of concept key 0, the first existing of
                DIR/new1/learned_embeds.safetensors (or .bin)   one training run per token,
                DIR/0/learned_embeds.safetensors (or .bin)      PB3/train.py --json runs,
                DIR/new1.{safetensors,bin,pt,pth}               one file per token,
                DIR/learned_embeds.safetensors (or .bin)        a single run's output folder
              (the last only when it holds <new1> by name)."""


def token_stem(token: str) -> str:
    """``"<new1>"`` -> ``"new1"``: a placeholder as a file or folder name, always one plain
    name inside its folder (no ``/``; ``"<..>"`` gives ``"__"``, never ``".."``)."""
    stem = re.sub(r"[^\w.-]+", "_", token.strip().strip("<>").strip())
    if not stem.strip("."):  # "." or "..": the folder itself or its parent
        stem = stem.replace(".", "_")
    return stem or "token"


def default_embedding_dirs(script: str | Path | None = None) -> list[Path]:
    """The default lookup folders: ``checkpoints/pb3`` of the checkout holding ``script`` (a
    ``PB3/*.py`` file, so the script's own clone is used whichever clone ``dlcv`` is installed
    from), then ``checkpoints/pb3`` of the working directory (when different)."""
    dirs = [Path(script).resolve().parents[1] / EMBEDDINGS_SUBDIR] if script is not None else []
    dirs.append(Path.cwd() / EMBEDDINGS_SUBDIR)
    return list(dict.fromkeys(dirs))


def embedding_entries(
    cli: list[str] | None = None, env: str | None = None, defaults: list[Path] | None = None
) -> list[str]:
    """The lookup entries: ``--embeddings`` values, then ``$PB3_EMBEDDINGS``, then ``defaults``
    (:func:`default_embedding_dirs` of the working directory when not given)."""
    entries = list(cli or [])
    env_value = os.environ.get(EMBEDDINGS_ENV, "") if env is None else env
    entries += [e for e in env_value.split(os.pathsep) if e.strip()]
    entries += [str(d) for d in (default_embedding_dirs() if defaults is None else defaults)]
    return entries


def _candidates(folder: Path, token: str, key: str | None) -> list[tuple[Path, bool]]:
    """Files in ``folder`` that may hold ``token``'s embedding, with whether renaming is allowed."""
    plain = token not in (".", "..") and not any(c in token for c in "/\\\0")  # never a path out of folder
    stems = list(dict.fromkeys([token_stem(token), token] if plain else [token_stem(token)]))
    out: list[tuple[Path, bool]] = []
    for stem in stems:
        out += [(folder / stem / name, True) for name in LEARNED_EMBEDS_NAMES]
    if key is not None:
        out += [(folder / str(key) / name, True) for name in LEARNED_EMBEDS_NAMES]
    for stem in stems:
        out += [(folder / f"{stem}{suffix}", True) for suffix in EMBEDDING_SUFFIXES]
    out += [(folder / name, False) for name in LEARNED_EMBEDS_NAMES]
    return out


def find_embedding(
    token: str, entries: list[str], key: str | None = None
) -> tuple[torch.Tensor, Path] | None:
    """``token``'s embedding ``(vectors, D)`` and the file it came from, per :data:`LOOKUP_HELP`.

    ``key`` is the concept key of ``input.json`` the token belongs to (for ``--json``
    training outputs). Returns ``None`` when no entry has it.
    """
    for entry in entries:
        name, sep, file = entry.partition("=")
        if sep and name.strip() and not Path(entry).exists():
            if name.strip() == token:
                return load_embedding(file, token)[1], Path(file)
            continue
        path = Path(entry)
        if path.is_file():
            found = read_embedding_file(path)
            if token in found:
                return found[token], path
        elif path.is_dir():
            for candidate, may_rename in _candidates(path, token, key):
                if not candidate.is_file():
                    continue
                found = read_embedding_file(candidate)
                if token in found:
                    return found[token], candidate
                if may_rename and len(found) == 1:
                    name, value = next(iter(found.items()))
                    if name != candidate.stem:  # the file names its token, and not this one
                        warn(
                            f"{candidate} holds the embedding of {name}, used here for {token}; if that "
                            f"is not intended, pass the right file with --embeddings {token}=FILE"
                        )
                    return value, candidate
    return None


def check_entries(entries: list[str], defaults: list[Path] | None = None) -> None:
    """Refuse ``--embeddings`` / ``$PB3_EMBEDDINGS`` entries that name nothing on disk (the
    ``defaults`` folders may be absent)."""
    optional = {str(d) for d in (default_embedding_dirs() if defaults is None else defaults)}
    for entry in entries:
        name, sep, file = entry.partition("=")
        path = Path(file if sep and name.strip() and not Path(entry).exists() else entry)
        if not path.exists() and str(path) not in optional:
            raise UserError(f"--embeddings / ${EMBEDDINGS_ENV}: {path} does not exist")


def find_embeddings(
    tokens: Mapping[str, str | None], entries: list[str], train_hint: Callable[[str], str]
) -> dict[str, tuple[torch.Tensor, Path]]:
    """Every token's embedding and its file (:func:`find_embedding`; ``tokens`` maps each to its
    concept key or ``None``). A token found nowhere is one :class:`UserError` line naming the
    entries and ``train_hint(token)``, the command that would train it."""
    found = {}
    for token, key in tokens.items():
        hit = find_embedding(token, entries, key)
        if hit is None:
            concept = f" (concept {key!r})" if key is not None else ""
            raise UserError(
                f"no learned embedding for {token}{concept} in {', '.join(entries)}; train it with "
                f"`{train_hint(token)}` or pass --embeddings DIR_OR_FILE (see --help)"
            )
        found[token] = hit
    return found


def add_learned_tokens(
    sd: StableDiffusion, found: Mapping[str, tuple[torch.Tensor, Path]]
) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Add each found embedding to ``sd``'s tokenizer and text encoder (one line per token says
    from where); return ``{token: vectors}`` and ``{token: its token ids}`` of the tokens whose
    vectors fit in a prompt (a warning told of the others: :func:`check_vector_count`)."""
    vectors, ids = {}, {}
    room = sd.tokenizer.model_max_length - 2  # besides the start and end tokens
    for token, (value, path) in found.items():
        ids |= add_embeddings(sd.tokenizer, sd.text_encoder, {token: value}, source=str(path))
        vectors[token] = value.shape[0]
        check_vector_count(token, vectors[token], room, str(path))
        print(f"{token}: {value.shape[0]} vector(s) from {path}")
    return vectors, {t: i for t, i in ids.items() if vectors[t] < room}


def warn_cut_placeholders(
    tokenizer: CLIPTokenizer, prompts: Sequence[str], vectors: Mapping[str, int], ids: Mapping[str, list[int]]
) -> None:
    """One warning per prompt whose placeholder (of ``ids``) CLIP's 77-token truncation cuts."""
    for prompt in dict.fromkeys(prompts):
        cut = cut_placeholders(tokenizer, expand_placeholders(prompt, vectors), ids)
        if cut:
            which = ", ".join(f"{token} ({n} of {len(ids[token])} vector(s))" for token, n in cut.items())
            shown = prompt if len(prompt) <= 60 else prompt[:57] + "..."
            warn(
                f"prompt {shown!r} is longer than CLIP's {tokenizer.model_max_length} tokens and its "
                f"truncation cuts {which}: the images will not show the learned concept fully; shorten "
                "the prompt"
            )
