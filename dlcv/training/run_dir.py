"""A training's output folder: one run at a time, never over another run's files, no leftovers.

* :class:`RunLock`: ``OUT/.train.lock``, held (``fcntl.flock``) while a run trains there; a
  second run on the same folder is refused with one line naming the folder and the holder's
  PID. The kernel drops the lock when its process ends, however it ends, so a lock file left
  by a killed run (its PID dead) is simply taken over.
* :func:`other_run_outputs`: the files (:data:`RUN_OUTPUTS`) that show a folder already holds
  a run, which a fresh run (neither ``resume`` nor ``overwrite``) refuses to write over.
* :func:`trim_metrics`: on resume, ``metrics.jsonl`` loses the records written after the
  checkpoint's step, so that the resumed run logs each step once.
* :func:`refuse_run_links` and :class:`MetricsLog`: nothing a run writes goes through a
  symbolic link inside its folder (a link there is refused before the run starts; the log is
  opened without following one, the other files are written by rename, which replaces a link).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dlcv.cli import UserError, disk_error, refuse_links
from dlcv.io.checkpoint import save_text

try:
    import fcntl
except ImportError:  # not on Windows: the folder is then not locked
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".train.lock"
#: Files a training run leaves in its folder: the trainer's own, then the exports of PB1
#: (model.safetensors), PB2 (unet.pt, unet.safetensors) and PB3 (learned_embeds.safetensors).
RUN_OUTPUTS = (
    "checkpoint.pt",
    "metrics.jsonl",
    "model.safetensors",
    "unet.pt",
    "unet.safetensors",
    "learned_embeds.safetensors",
)
#: Everything a run may write in its folder: its outputs, the lock, and the sample and model
#: subfolders of PB1/PB2/PB3 (none of them may be a symbolic link: :func:`refuse_run_links`).
RUN_WRITES = (*RUN_OUTPUTS, LOCK_NAME, "samples", "models")


def other_run_outputs(out_dir: str | Path) -> list[str]:
    """The names of :data:`RUN_OUTPUTS` present in ``out_dir`` (files or anything else)."""
    out = Path(out_dir)
    return [name for name in RUN_OUTPUTS if os.path.lexists(out / name)]


class RunLock:
    """``out_dir/.train.lock`` held for as long as the context lasts (a context manager).

    Taken with ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the file, which holds the PID of the
    holder for the message of a refused run; released (and the file removed) on leaving.
    Without ``fcntl`` (Windows) nothing is locked.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise a one-line :class:`UserError` when another run holds it."""
        if fcntl is None or self._fd is not None:
            return
        for _ in range(100):  # a holder removing the file as we open it: open it again
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
            except OSError as err:
                raise _open_error(err, self.path) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # BlockingIOError: held by another open file, in this or another process
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise UserError(
                    f"{self.out_dir} is in use by another training run (process {holder}, "
                    f"lock {self.path}): wait for it to end, or choose another output "
                    "folder"
                ) from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                try:
                    os.ftruncate(fd, 0)
                    os.write(fd, f"{os.getpid()}\n".encode())
                except OSError as err:
                    os.close(fd)
                    raise _open_error(err, self.path) from None
                self._fd = fd
                return
            os.close(fd)
        raise UserError(f"cannot lock {self.path}: the file keeps changing; is another run starting there?")

    def release(self) -> None:
        """Remove the lock file and let go of the lock (nothing when not held)."""
        if self._fd is None:
            return
        try:
            if os.path.samestat(os.fstat(self._fd), os.stat(self.path)):
                os.unlink(self.path)  # while still locked: no one can take a file about to go
        except OSError:
            pass
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_error(err: OSError, path: Path) -> Exception:
    """A one-line :class:`UserError` for a run's file that cannot be opened or written: a
    symbolic link in its place (``ELOOP`` under ``O_NOFOLLOW``) or a full disk; else ``err``."""
    if os.path.islink(path):
        return UserError(
            f"{path} is a symbolic link: a training writes no file through a link; remove "
            "it or choose another output folder"
        )
    return disk_error(err, path) or err


def refuse_run_links(out_dir: str | Path) -> None:
    """Refuse (one :class:`UserError` line) an output folder where anything a run writes
    (:data:`RUN_WRITES`) is a symbolic link: the run would write where the link points."""
    refuse_links(out_dir, RUN_WRITES, "training output")


class MetricsLog:
    """``metrics.jsonl``, opened for appending without following a link (``O_NOFOLLOW``); each
    record is one line, flushed at once. A write the disk refuses is one :class:`UserError`
    naming the file; a half line it leaves is dropped by :func:`trim_metrics` on resume."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o666)
        except OSError as err:
            raise _open_error(err, self.path) from None
        self._file = os.fdopen(fd, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
        except OSError as err:
            raise _open_error(err, self.path) from None

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:  # what a full disk did not take is gone: the error was reported at write
            pass


def trim_metrics(path: str | Path, step: int) -> int:
    """Drop the records of ``path`` (``metrics.jsonl``) after ``step``, and any line that is not
    a record (the half line of a crash); the file is rewritten atomically, only when something
    goes. Returns how many lines went."""
    path = Path(path)
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line)
    dropped = len(lines) - len(kept)
    if dropped:
        save_text("".join(line + "\n" for line in kept), path)
    return dropped
