"""Atomic writes and safe reads of checkpoints and weight files.

Every file the project reads is read without running code from it: PyTorch files with
``torch.load(weights_only=True)`` (tensors and plain containers only) through
:func:`torch_load`, safetensors files through :func:`read_safetensors`. A file that
cannot be read gets one :class:`~dlcv.cli.UserError` line that says what the file
really is (a text file, an image, a pickle that would import ``builtins.exec``, a
truncated archive, ...), never PyTorch's own text (which suggests turning the safety
off) and without PyTorch's warnings before it. Written files follow the umask.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickletools
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors.torch import save_file

from dlcv.cli import UserError, disk_error, parse_json

# ---- writing --------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The temporary file of an atomic write of ``NAME`` by process ``PID``: ``.NAME.tmpPID``.
TEMPORARY = re.compile(r"\.(?P<name>.+)\.tmp(?P<pid>[0-9]+)")


def temporary_path(path: str | Path, pid: int | None = None) -> Path:
    """Where process ``pid`` (this one by default) writes ``path`` before renaming it."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid() if pid is None else pid}")


def process_alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this machine (perhaps another user's)."""
    if pid <= 0:  # 0 and negative numbers name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError, OSError):
        return False
    return True


def remove_stale_temporaries(folder: str | Path, depth: int = 1) -> list[Path]:
    """Delete the temporary files of atomic writes (:data:`TEMPORARY`, ``.NAME.tmpPID``) that a
    crashed process left in ``folder`` and in its subfolders down to ``depth`` levels: those of
    processes no longer running, and this process's own. Only plain files of that pattern are
    removed (no links, no folders, nothing else); the removed paths are returned."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if depth > 0:
                removed += remove_stale_temporaries(entry.path, depth - 1)
            continue
        match = TEMPORARY.fullmatch(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or not process_alive(pid):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Write ``path`` through ``write(temporary)`` and a rename, so that readers see the old
    file or the whole new one, never part of it: a crash, a kill or a full disk leaves no
    half-written (or zero-byte) file under the name. The file gets the umask's usual mode
    (0644 under umask 022), whatever mode the writer created it with.

    A symbolic link at ``path`` is replaced by the new file, never followed (nor is one planted
    where the temporary goes). A write the storage refuses (full, over quota, read-only) is
    one :class:`~dlcv.cli.UserError` naming ``path`` (:func:`dlcv.cli.disk_error`)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_file(tmp)  # a leftover of this PID, or a planted link
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        failure = disk_error(err, path)
        if failure is None:
            raise
        raise failure from None
    finally:
        with contextlib.suppress(OSError):
            _remove_file(tmp)
    return path


def _remove_file(path: Path) -> None:
    """Remove ``path`` when it is a file or a link (to anything); leave a folder alone."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)


class _RecordingWriter:
    """A binary file for ``torch.save`` that remembers the ``OSError`` of a failed write:
    torch reports it as a ``RuntimeError`` without the reason (``unexpected pos ...``)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def _torch_save(state: Any, tmp: Path) -> None:
    with open(tmp, "xb") as f:  # exclusive: never through a link
        writer = _RecordingWriter(f)
        try:
            torch.save(state, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise


def _safetensors_save(tensors: dict[str, torch.Tensor], tmp: Path, metadata: dict[str, str] | None) -> None:
    try:
        save_file(tensors, str(tmp), metadata=metadata)
    except Exception as err:  # SafetensorError: the OS error only in its text ("(os error 28)")
        found = re.search(r"os error (\d+)", str(err))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(tmp)) from None


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to a temporary file, then rename: a crash never leaves half a file.

    ``state`` must hold only tensors, numbers, strings and containers of them, so
    that :func:`load_checkpoint` can read it with ``weights_only=True``.
    """
    return atomic_write(Path(path), lambda tmp: _torch_save(state, tmp))


def save_text(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: readers see the old file or the new one."""
    return atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def save_weights(
    state_dict: dict[str, torch.Tensor], path: str | Path, config: dict[str, Any] | None = None
) -> Path:
    """Save tensors as safetensors (atomically), with ``config`` as JSON in the metadata."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    metadata = {"config": json.dumps(config)} if config is not None else None
    return atomic_write(Path(path), lambda tmp: _safetensors_save(tensors, tmp, metadata))


# ---- what a file is -------------------------------------------------------------------

ZIP = "a zip archive (as torch.save writes)"
PICKLE = "a Python pickle (as pickle or an old torch.save writes)"
SAFETENSORS = "a safetensors file"


def describe_file(path: str | Path) -> str:
    """What ``path`` holds, judged from its first bytes: ``"a text file"``, :data:`ZIP`, ..."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as err:
        return f"unreadable ({err.strerror or err})"
    if not head:
        return "an empty file"
    if head.startswith(b"PK\x03\x04"):
        return ZIP
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        return PICKLE
    if len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return SAFETENSORS
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")):
        return "an image"
    if b"\0" not in head:
        try:
            head.decode("utf-8")
            return "a text file"
        except UnicodeDecodeError as err:
            if err.start >= len(head) - 3:  # a character cut by the 4096-byte read
                return "a text file"
    return "binary data of an unknown format"


def is_torchscript_archive(path: str | Path) -> bool:
    """True for a TorchScript zip (it holds ``code/`` and ``constants.pkl``), not a torch.save file."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


_STRING_OPS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "SHORT_BINSTRING",
    "BINSTRING",
    "STRING",
}
_SAFE_GLOBALS = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set", "builtins.frozenset")


def _globals_in_pickles(stream: io.BufferedIOBase) -> list[str]:
    """The classes and functions named by the pickle(s) in ``stream``, read with pickletools
    (a disassembler: nothing is imported or called). A legacy torch file is several pickles
    followed by raw tensor bytes; reading stops at the first thing that is not a pickle."""
    found: list[str] = []
    while True:
        pushed: list[Any] = []
        memo: dict[int, Any] = {}
        try:
            for op, arg, _ in pickletools.genops(stream):
                if op.name in _STRING_OPS:
                    pushed.append(arg)
                elif op.name in ("BINGET", "LONG_BINGET", "GET"):
                    pushed.append(memo.get(int(arg)))
                elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
                    memo[int(arg)] = pushed[-1] if pushed else None
                elif op.name == "MEMOIZE":
                    memo[len(memo)] = pushed[-1] if pushed else None
                elif op.name == "GLOBAL":
                    found.append(str(arg).replace(" ", "."))
                    pushed.append(None)
                elif op.name == "STACK_GLOBAL":
                    module, name = pushed[-2:] if len(pushed) >= 2 else (None, None)
                    found.append(f"{module}.{name}" if isinstance(module, str) else "an unnamed global")
                    pushed.append(None)
                else:
                    pushed.append(None)
        except Exception:  # not (or no longer) a pickle: the end of what can be read
            break
        if not stream.read(1):
            break
        stream.seek(-1, io.SEEK_CUR)
    # protocol-2 pickles spell Python 3's module names the Python 2 way
    return list(dict.fromkeys(name.replace("__builtin__.", "builtins.", 1) for name in found))


def unsafe_globals(path: str | Path) -> list[str]:
    """The globals (classes, functions) a torch file or pickle names that ``weights_only``
    refuses to import, found without unpickling anything; ``[]`` when none or unreadable."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if zipfile.is_zipfile(path):
                return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
            with open(path, "rb") as f:
                names = _globals_in_pickles(f)
    except Exception:  # a damaged archive, a TorchScript file, an unreadable file
        return []
    return [g for g in names if not g.startswith(_SAFE_GLOBALS)]


def explain_unreadable(path: str | Path, expected: str = "a PyTorch checkpoint") -> str:
    """Why a torch file could not be read with ``weights_only=True``: what the file really is."""
    kind = describe_file(path)
    if kind == ZIP:
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return "it is a truncated or damaged zip archive (copy the file again)"
        if is_torchscript_archive(path):
            return f"it is a TorchScript archive, not {expected}"
        if not any(n.endswith("data.pkl") for n in names):
            return f"it is a zip archive but not {expected}"
    elif kind != PICKLE:
        return f"it is {kind}, not {expected}"
    bad = unsafe_globals(path)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        return (
            f"it is a pickle that needs {bad[0]}{more} to load, which is refused: files are read as "
            "tensors and plain containers only, and no code from a file is ever run"
        )
    if kind == PICKLE:
        return f"it is a Python pickle but not {expected}"
    return f"it is a truncated or unsupported PyTorch file, not {expected}"


# ---- reading --------------------------------------------------------------------------


def torch_load(
    path: str | Path,
    what: str = "checkpoint",
    *,
    mmap: bool = False,
    allow: Iterable[Any] = (),
    expected: str = "a PyTorch checkpoint",
) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU, quietly; ``allow`` is passed to
    ``torch.serialization.safe_globals``. Any failure is one UserError line naming ``what``
    and the file and saying what it holds instead (see :func:`explain_unreadable`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(list(allow)):
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4 ..." before our error
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except MemoryError:
        raise UserError(f"not enough memory to read {what} {path}") from None
    except Exception:  # unpickling errors come in many types; say what the file is instead
        raise UserError(f"cannot read {what} {path}: {explain_unreadable(path, expected)}") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` onto the CPU; user errors name the file."""
    state = torch_load(path, "checkpoint", expected="a training checkpoint (checkpoint.pt)")
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {path} holds a {type(state).__name__}, not a training checkpoint")
    return state


def state_dict_mismatch(
    model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], limit: int = 3
) -> str | None:
    """Describe how ``state_dict`` fails to fit ``model`` (names, shapes) in one line, or None
    when it fits; ``model`` may live on the meta device."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(v.shape)} (expected {expected[k]})"
        for k, v in state_dict.items()
        if k in expected and (not isinstance(v, torch.Tensor) or tuple(v.shape) != expected[k])
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            shown = ", ".join(items[:limit]) + (", ..." if len(items) > limit else "")
            problems.append(f"{len(items)} {label} ({shown})")
    return "; ".join(problems) or None


def check_finite_weights(tensors: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Refuse, with one :class:`UserError` naming ``path`` and the weight, weights that hold
    NaN or infinite values (a diverged training or a damaged file): a network with them draws
    blank images, which nothing downstream would notice."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserError(
                f"{path}: weight {name} holds NaN or infinite values (a diverged training or a "
                "damaged file); it would draw blank images"
            )


def read_safetensors(
    path: str | Path, what: str = "weights", expected: str = "a .safetensors file"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of a safetensors file; one UserError line otherwise."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except MemoryError:
        raise UserError(f"not enough memory to read {what} {path}") from None
    except Exception:
        kind = describe_file(path)
        found = "a damaged or truncated safetensors file" if kind == SAFETENSORS else kind
        raise UserError(f"cannot read {what} {path}: expected {expected}, but it is {found}") from None
    return tensors, meta


def load_weights(
    path: str | Path, expected: str = "a .safetensors file"
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Read a safetensors file written by :func:`save_weights`: ``(tensors, config or None)``.

    ``expected`` says in an error what the file should have been."""
    tensors, meta = read_safetensors(path, "weights", expected)
    config = parse_json(meta["config"], f"{path}: its 'config' metadata") if "config" in meta else None
    return tensors, config
