"""Interleaved timing: compare implementations in one process, alternating, and report medians and ratios.

Timings on shared machines are noisy; running candidates in turn (A, B, A, B, ...) exposes both to the
same background load, so their ratio is far steadier than either time alone.
"""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch


def interleaved_runs(
    fns: dict[str, Callable[[], object]], repeats: int = 20, warmup: int = 3
) -> dict[str, list[float]]:
    """Seconds of every call of each function, calling them in turn (round i holds each one's i-th call)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def interleaved(fns: dict[str, Callable[[], object]], repeats: int = 20, warmup: int = 3) -> dict[str, float]:
    """Median seconds per call of each function, calling them in turn ``repeats`` times."""
    return {name: statistics.median(ts) for name, ts in interleaved_runs(fns, repeats, warmup).items()}


def paired_ratio(slow: list[float], fast: list[float]) -> tuple[float, float, float]:
    """Median and quartiles of ``slow[i] / fast[i]`` over rounds: a speed-up from interleaved runs.

    A ratio within each round cancels the machine's slow drifts (other jobs, clock changes), which move
    both runs of a round alike; the median of the ratios is steadier than the ratio of the medians.
    """
    ratios = sorted(a / b for a, b in zip(slow, fast, strict=True))
    q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return median, q1, q3


def forward_backward(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    """A closure running one forward and backward pass of ``model`` on ``x`` (gradients zeroed first)."""

    def run() -> None:
        model.zero_grad(set_to_none=True)
        y = model(x)[0]
        y.sum().backward()

    return run


def header(title: str, threads: str | None = None) -> str:
    """A line with the title, torch version and intra-op thread count (or ``threads`` as given)."""
    return f"# {title} | torch {torch.__version__} | threads {threads or torch.get_num_threads()}"


def status_kib(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in KiB (Linux), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_above_baseline(fn: Callable[[], object]) -> tuple[object, float]:
    """Run ``fn`` once; its result and the peak resident memory above the resident memory before it, in MiB.

    Linux: VmHWM after resetting it through /proc/self/clear_refs; elsewhere ru_maxrss (a whole-process peak).
    """
    exact = reset_peak()
    base = status_kib("VmRSS") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = fn()
    peak = status_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out, ((peak or 0) - (base or 0)) / 1024


def median_time_and_peak(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of ``repeats`` calls of ``fn`` and their peak resident memory above the baseline, in MiB."""

    def timed() -> list[float]:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return times

    times, peak_mib = peak_above_baseline(timed)
    return statistics.median(times), peak_mib
