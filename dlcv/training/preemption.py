"""Stopping a training cleanly on SIGTERM, SIGINT (Ctrl-C) and SIGUSR1.

Clusters and schedulers preempt a job with SIGTERM (SLURM, Kubernetes, torchrun passing
it on), often a grace period before SIGKILL; SLURM's ``--signal=USR1@60`` sends SIGUSR1
ahead of the time limit. While :class:`StopSignals` is installed, the first of these only
records that the run should stop: the trainer finishes its optimiser step, saves its
checkpoint and raises :class:`dlcv.cli.Interrupted`. A second signal stops at once
(``KeyboardInterrupt``), without a new checkpoint; the previous one, written atomically,
stays whole.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

#: The signals that ask a training to stop (those this platform has).
STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGUSR1") if hasattr(signal, name)
)


def signal_name(signum: int) -> str:
    """``"SIGTERM"`` for 15, and so on (``"signal N"`` for a number Python does not name)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    """A context manager: while inside it, :data:`STOP_SIGNALS` set :attr:`received` (the
    first signal's number) instead of ending the process; on leaving, the handlers that were
    there before are put back.

    Python runs signal handlers in the main thread only, so the handlers are installed only
    when entered from the main thread; from another thread nothing changes and
    :attr:`received` stays ``None``.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:  # the second signal: stop now
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                try:
                    self._previous[signum] = signal.signal(signum, self._handle)
                except (OSError, ValueError):  # a signal this process may not handle
                    continue
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            # None: a handler set outside Python, which cannot be put back; the default then
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
