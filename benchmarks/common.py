"""Interleaved timing: compare implementations in one process, alternating, and report medians and ratios.

Timings on shared machines are noisy; running candidates in turn (A, B, A, B, ...) exposes both to the
same background load, so their ratio is far steadier than either time alone.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def interleaved(fns: dict[str, Callable[[], object]], repeats: int = 20, warmup: int = 3) -> dict[str, float]:
    """Median seconds per call of each function, calling them in turn ``repeats`` times."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def forward_backward(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """A closure running one forward and backward pass of ``model`` on ``x`` (gradients zeroed first)."""

    def run() -> None:
        model.zero_grad(set_to_none=True)
        y = model(x)[0]
        y.sum().backward()

    return run


def header(title: str) -> str:
    """A line with the title, torch version and intra-op thread count."""
    return f"# {title} | torch {torch.__version__} | threads {torch.get_num_threads()}"
