"""Speed paths only: each computes what an equation in ``mnemonet.models`` computes, faster.

This package sits below ``models`` (it imports nothing from it): oneDNN matmuls (:mod:`.onednn`), the BN-LSTM
recurrence with a hand-written backward (:mod:`.bn_lstm`), the DNC's fused memory step (:mod:`.dnc_access`;
in C, built once with the system compiler, in :mod:`.native`), fused LSTM step (:mod:`.lstm_step`),
whole-sequence node (:mod:`.dnc_sequence`) and its workspaces (:mod:`.workspaces`), the whole RIMs sequence as
one node (:mod:`.rims_sequence`, its step's non-matmul parts in C where :mod:`.native` builds), weights
whose gradient is formed once per sequence (:mod:`.time_shared`) and the tricks they share (:mod:`.tricks`).
``tests/kernels`` proves each equal to the readable path, values and gradients.

Models ask :func:`is_enabled` before taking a kernel. ``enabled(False)`` runs the readable equations
everywhere, as a global switch or, used with ``with``, for a block; the environment variable
``MNEMONET_KERNELS=0`` (read at import) starts with kernels off, so a whole test suite can run that way.

Example:
    >>> import mnemonet.kernels as kernels
    >>> before = kernels.is_enabled()
    >>> with kernels.enabled(False):
    ...     kernels.is_enabled()
    False
    >>> kernels.is_enabled() == before
    True
"""

from __future__ import annotations

import os
from types import TracebackType

_ENV = "MNEMONET_KERNELS"


def _from_env() -> bool:
    value = os.environ.get(_ENV, "1").strip().lower()
    if value in ("1", "true", "on", "yes", ""):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{_ENV}: expected 0 or 1, got {value!r}")


_enabled = _from_env()


def is_enabled() -> bool:
    """Whether models take their kernels (True unless switched off)."""
    return _enabled


class enabled:  # noqa: N801 (used like a function: ``enabled(False)``, ``with enabled(False):``)
    """Switch kernels on or off now; used with ``with``, the previous setting returns at the block's end.

    Args:
        on: True to use kernels where they exist, False for the readable equations everywhere.
    """

    def __init__(self, on: bool) -> None:
        global _enabled
        if not isinstance(on, bool):
            raise ValueError(f"on: expected True or False, got {on!r}")
        self.previous = _enabled
        _enabled = on

    def __enter__(self) -> enabled:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        global _enabled
        _enabled = self.previous


__all__ = ["enabled", "is_enabled"]
