"""Storage that refuses writes, for tests: a real full file system where the tests may mount
one, and files that fail like a full disk everywhere else."""

from __future__ import annotations

import contextlib
import errno
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def tiny_filesystem(folder: Path, size: str = "64k") -> Iterator[bool]:
    """Mount a ``size`` tmpfs on ``folder`` (root only) for the block; yields whether it could."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    try:
        yield mount.returncode == 0
    finally:
        if mount.returncode == 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)


class FullFile(io.RawIOBase):
    """A writable file that takes ``room`` bytes (written to ``path``, as a disk would) and then
    fails every write with ``ENOSPC``."""

    def __init__(self, path: str | Path, room: int = 100) -> None:
        self.path, self.room = Path(path), room
        self.file = open(path, "xb")  # noqa: SIM115

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.file.write(data[: self.room])
            self.room = 0
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        self.room -= len(data)
        return self.file.write(data)

    def close(self) -> None:
        self.file.close()
        super().close()
