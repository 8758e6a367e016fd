"""Where training runs: the device (cuda, mps or cpu, chosen automatically or by name) and CPU threads.

``DEFAULT_THREADS`` is the intra-op thread count used when ``trainer.threads`` is not set (the
thread count actually used is written to the run's ``config.yaml``, so a resumed run uses the same
one and repeats the uninterrupted run's arithmetic). It was chosen by timing the demo's training
step (mnemonet GRU of 100 units + readout, Adam, clipping, T = 20) on a 2-core machine, one and two
threads interleaved in blocks of 20 steps, 30 blocks each (median ms/step):

    batch 32:  1 thread 4.84,  2 threads 3.83
    batch 64:  1 thread 8.44,  2 threads 6.28

so two threads (capped at the machine's CPU count) are about 20-25% faster for models of this size.
Tiny models (8 hidden units, as in the tests) gain nothing from a second thread (0.65 vs 0.69 ms),
and a second thread loses badly when other processes compete for the cores; set ``--threads 1``
(or ``trainer.threads: 1``) there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

DEFAULT_THREADS = max(1, min(2, os.cpu_count() or 1))


def choose_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """The device to train on.

    Args:
        name: ``"auto"`` (cuda if available, else mps, else cpu), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        local_rank: under ``torchrun``, this process's GPU index (used for ``"auto"`` and ``"cuda"``).

    Raises:
        ValueError: unknown name, or a device that this machine does not have.
    """
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    kind = name.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {name!r}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {name!r} requested but CUDA is not available on this machine")
        if name == "cuda" and local_rank is not None:
            name = f"cuda:{local_rank}"
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device: 'mps' requested but MPS is not available on this machine")
    return torch.device(name)


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[int]:
    """Run a block with ``threads`` intra-op threads (``DEFAULT_THREADS`` when None), then restore."""
    before = torch.get_num_threads()
    n = DEFAULT_THREADS if threads is None else threads
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


__all__ = ["DEFAULT_THREADS", "choose_device", "num_threads"]
