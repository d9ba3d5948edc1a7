"""Command-line helpers: user errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

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
    (``flags``: argument name to flag, where it is not ``--name``)."""
    try:
        main()
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
    sys.exit(0)


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
        raise UserError(f"cannot write in {what} {out}{where}: read-only folder or file system; "
                        "choose a writable folder")  # fmt: skip
    return out


def plain_name(name: str, what: str) -> str:
    """``name`` (read from an input file) if it is one plain file or folder name, else a
    :class:`UserError`: no ``/`` or ``\\``, not ``.`` or ``..``, not empty. Such a name joined
    to a folder can never lead outside it."""
    text = str(name)
    if not text.strip() or text in (".", "..") or any(c in text for c in "/\\\0"):
        raise UserError(f"{what} {text!r} cannot be used as a folder name: expected a plain name "
                        "without '/', '\\' or '..' (outputs must stay inside the output folder)")  # fmt: skip
    return text


def child_path(base: str | Path, name: str, what: str) -> Path:
    """``base / name`` for a ``name`` read from an input file, checked by :func:`plain_name`."""
    return Path(base) / plain_name(name, what)
