"""Command-line helpers: user errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn


class UserError(Exception):
    """A problem with what the user passed (a path, an argument, a file's content).

    Entry points wrapped by :func:`run` print it as a single ``error: ...`` line
    and exit with status 2 instead of showing a traceback.
    """


def run(main: Callable[[], object]) -> NoReturn:
    """Call ``main()`` and exit: 0 on success, 2 on :class:`UserError`, 130 on Ctrl-C."""
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
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
