"""Stopping cleanly: SIGTERM (a scheduler's preemption) and SIGINT (Ctrl-C) while training.

The first signal only sets a flag; the training loop finishes the step it is in, writes a checkpoint
and returns, and the command line exits with the conventional code 128 + signal number (130 for
SIGINT, 143 for SIGTERM). A second signal exits at once, without a checkpoint. Handlers can only be
installed from the main thread; elsewhere :class:`StopSignals` does nothing.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Catch SIGINT / SIGTERM for the length of a ``with`` block.

    Attributes:
        signum: the first signal received, or None.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Whether a signal asked training to stop."""
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (0 when none came)."""
        return 128 + self.signum if self.signum is not None else 0

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            os.write(2, f"\n{name} again: exiting now, without a checkpoint\n".encode())
            os._exit(128 + signum)
        self.signum = signum
        os.write(2, f"\n{name}: finishing this step and writing a checkpoint ({name} again exits at once)\n".encode())

    def __enter__(self) -> StopSignals:
        if self.enabled:
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        sys.stderr.flush()


__all__ = ["SIGNALS", "StopSignals"]
