"""Command-line helpers: user errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

#: ``--precision`` choices of every entry point (Problem 2 adds ``tf32``); what they mean is
#: :func:`dlcv.runtime.resolve_precision`'s rule. Here, so that command lines need no torch.
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


class UserError(Exception):
    """A problem with what the user passed (a path, an argument, a file's content).

    Entry points wrapped by :func:`run` print it as a single ``error: ...`` line
    and exit with status 2 instead of showing a traceback.
    """


class ArgumentError(UserError):
    """A bad value of a named argument of a library function.

    The message names the arguments in backticks, as a library caller knows them
    (``"`resume`: no checkpoint at ..."``); a command line shows its flags instead
    (:meth:`command_line`, used by :func:`run`: ``"--resume: no checkpoint at ..."``).
    """

    def command_line(self, flags: Mapping[str, str] | None = None) -> str:
        """The message with each backticked argument replaced by its flag: ``flags[name]``,
        by default ``--name`` with ``_`` written ``-``."""
        return with_flags(str(self), flags)


def with_flags(text: str, flags: Mapping[str, str] | None = None) -> str:
    """``text`` with each backticked argument name replaced by its command-line flag:
    ``flags[name]``, by default ``--name`` with ``_`` written ``-``."""
    flags = flags or {}
    return re.sub(r"`(\w+)`", lambda m: flags.get(m[1], "--" + m[1].replace("_", "-")), text)


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal (SIGTERM, SIGINT, SIGUSR1) once it had saved what it had done.

    A :class:`KeyboardInterrupt`, so that no ``except Exception`` carries on after it. The
    message says where the state went and names arguments in backticks, as
    :class:`ArgumentError` does; :func:`run` prints it as one line and exits with
    ``exit_status``: 128 + the signal's number, as a shell reports a process the signal
    ended (143 for SIGTERM, 130 for SIGINT).
    """

    def __init__(self, message: str, exit_status: int = 130) -> None:
        super().__init__(message)
        self.exit_status = exit_status

    def command_line(self, flags: Mapping[str, str] | None = None) -> str:
        """The message with the arguments written as flags (see :func:`with_flags`)."""
        return with_flags(str(self), flags)


def run(main: Callable[[], object], flags: Mapping[str, str] | None = None) -> NoReturn:
    """Call ``main()`` and exit: 0 on success, 2 on :class:`UserError`, 130 on Ctrl-C, and
    :attr:`Interrupted.exit_status` (143 for SIGTERM) when a training stopped on a signal.

    An :class:`ArgumentError` or :class:`Interrupted` names the arguments by their flags
    (``flags``: argument name to flag, where it is not ``--name``). A write that the disk
    refuses (full, over quota, read-only) ends in one ``error:`` line naming the file, as a
    :class:`UserError` does. Standard output that cannot be written (``> /dev/full``, a closed
    pipe) does not stop the work: one ``warning:`` line, and the exit status says whether the
    work itself succeeded."""
    stdout = sys.stdout
    sys.stdout = _TolerantStream(stdout)
    try:
        main()
        sys.stdout.flush()  # what is still buffered: its failure is only a warning too
    except UserError as err:
        text = err.command_line(flags) if isinstance(err, ArgumentError) else str(err)
        print(f"error: {text}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as err:
        print(f"interrupted: {err.command_line(flags)}", file=sys.stderr)
        sys.exit(err.exit_status)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as err:  # a write that no helper translated: still one line when the disk said no
        failure = disk_error(err, err.filename)
        if failure is None:
            raise
        print(f"error: {failure}", file=sys.stderr)
        sys.exit(2)
    finally:
        sys.stdout = stdout
    sys.exit(0)


class _TolerantStream:
    """Standard output that never raises: after the first failed write or flush (``OSError``:
    a full device, a closed pipe) one ``warning:`` line goes to stderr, the file descriptor is
    pointed at ``/dev/null`` (so what the stream still buffers is dropped quietly, also at
    exit) and everything after is discarded."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.failed = False

    def write(self, text: str) -> int:
        if not self.failed:
            try:
                return self._stream.write(text)
            except OSError as err:
                self._give_up(err)
        return len(text)

    def flush(self) -> None:
        if not self.failed:
            try:
                self._stream.flush()
            except OSError as err:
                self._give_up(err)

    def _give_up(self, err: OSError) -> None:
        self.failed = True
        try:
            fd = self._stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        except (OSError, ValueError, AttributeError):
            pass  # not a real file (a test's capture): nothing buffered outside this object
        reason = err.strerror or type(err).__name__
        warn(f"cannot write to standard output ({reason}): carrying on without printing progress")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


#: ``errno`` of a write the storage refused, and how a message says it.
DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large for the file system",
}


def disk_error(err: OSError, path: str | Path | None) -> UserError | None:
    """The one-line :class:`UserError` for a write to ``path`` that failed because the storage
    is full, over quota or read-only (:data:`DISK_ERRORS`); ``None`` for any other error."""
    reason = DISK_ERRORS.get(err.errno or 0)
    if reason is None:
        return None
    where = str(path) if path is not None else "a file (the name was not reported)"
    advice = (
        "choose a writable folder" if err.errno == errno.EROFS else "free some space or choose another folder"
    )
    return UserError(f"cannot write {where}: {reason}; {advice}")


#: The largest ``--batch-size`` any command takes: far beyond what a GPU here holds, so a larger
#: one is a typo (``1000000000``), refused before any work instead of running out of memory later.
MAX_BATCH_SIZE = 65_536


def check_batch_size(value: int, flag: str = "--batch-size", zero: str | None = None) -> int:
    """``value`` if it is a usable batch size (1 to :data:`MAX_BATCH_SIZE`; also 0 when ``zero``
    says what 0 means, e.g. ``"all"``), else one :class:`UserError` line naming ``flag``."""
    low = 0 if zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_BATCH_SIZE:
        allowed = f"0 ({zero}) or 1-{MAX_BATCH_SIZE:,}" if zero else f"1-{MAX_BATCH_SIZE:,}"
        raise UserError(f"{flag} must be {allowed}, got {value}")
    return value


def existing_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise UserError naming it if it is not a file."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} not found: {p}")
    return p


def existing_dir(path: str | Path, what: str = "folder") -> Path:
    """Return ``path`` as a Path, or raise UserError naming it if it is not a directory."""
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{what} not found: {p}")
    return p


def warn(message: str) -> None:
    """Print a one-line ``warning: ...`` to stderr: the input is legal but probably a mistake."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def prepare_out_dir(path: str | Path, what: str = "output folder", create: bool = True) -> Path:
    """Create the output folder (and its parents) and check that files can be written in it.

    Called before any slow work, so a bad path fails at once with one :class:`UserError`
    line: a file in the way, a parent that cannot be created, or an existing folder that is
    read-only (a read-only mount, no write permission). With ``create=False`` nothing is
    created: only whether it could be (the nearest existing parent is checked instead).
    Nothing already in the folder is touched.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"{what} {out} exists and is not a folder")
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create {what} {out}: {err.strerror or err}") from None
    existing = out.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot create {what} {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == out.absolute() else f" (its parent {existing} is not writable)"
        raise UserError(
            f"cannot write in {what} {out}{where}: read-only folder or file system; choose a writable folder"
        )
    return out


def plain_name(name: str, what: str) -> str:
    """``name`` (read from an input file) if it is one plain file or folder name, else a
    :class:`UserError`: no ``/`` or ``\\``, not ``.`` or ``..``, not empty. Such a name joined
    to a folder can never lead outside it."""
    text = str(name)
    if not text.strip() or text in (".", "..") or any(c in text for c in "/\\\0"):
        raise UserError(
            f"{what} {text!r} cannot be used as a folder name: expected a plain name "
            "without '/', '\\' or '..' (outputs must stay inside the output folder)"
        )
    return text


def child_path(base: str | Path, name: str, what: str) -> Path:
    """``base / name`` for a ``name`` read from an input file, checked by :func:`plain_name`."""
    return Path(base) / plain_name(name, what)


def refuse_links(folder: str | Path, names: Iterable[str | Path], what: str = "output") -> None:
    """Refuse symbolic links inside ``folder`` where outputs go: each of ``names`` (relative
    paths, such as ``"svhn/0_001.png"``) and each folder on the way to it. ``folder`` itself may
    be a link (the user chose it); nothing inside it is written through one, so a link planted
    there cannot lead a run to write elsewhere. Called before any slow work."""
    base = Path(folder)
    seen: set[Path] = set()
    for name in names:
        path = base
        for part in Path(name).parts:
            path = path / part
            if path in seen:
                continue
            seen.add(path)
            if path.is_symlink():
                try:
                    target = os.readlink(path)
                except OSError:
                    target = "?"
                raise UserError(
                    f"{what} {path} is a symbolic link (to {target}): outputs are never written "
                    "through links; remove it or choose another folder"
                )
            if not path.exists():
                break


#: Deeper JSON than this is refused (Python's parser would hit its recursion limit).
JSON_MAX_DEPTH = 100


def parse_json(text: str | bytes, where: str | Path) -> Any:
    """``json.loads(text)``, or one :class:`UserError` naming ``where``: invalid JSON, text that
    is not UTF-8, or nesting deeper than :data:`JSON_MAX_DEPTH` (no configuration is that deep;
    Python would run out of recursion)."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        depth = _json_depth(text)
        if depth > JSON_MAX_DEPTH:
            raise UserError(
                f"{where} is not a usable JSON file: it is nested {depth} levels deep "
                f"(at most {JSON_MAX_DEPTH})"
            )
        return json.loads(text)
    except RecursionError:
        raise UserError(f"{where} is not a usable JSON file: it is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{where} is not valid JSON: {err}") from None


def _json_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in ``text`` outside strings (an upper bound of
    the JSON's depth; quick, no recursion)."""
    if "[" not in text and "{" not in text:
        return 0
    depth = deepest = 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]', text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The JSON of the file ``path`` (:func:`parse_json`); a missing or unreadable file is one
    :class:`UserError` line too."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {what} {path}: {err.strerror or err}") from None
    return parse_json(data, path)
