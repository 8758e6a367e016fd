"""Benchmark: BN-LSTM forward+backward time against our fused LSTM, interleaved in one process.

For each shape (B, T, I, H) the two models run in alternation (BN-LSTM, LSTM, BN-LSTM, ...) so that
both see the same machine load; the report gives the median time of a training step (forward, a
sum loss, backward) of each, and the ratio BN-LSTM / LSTM (of the wall-clock medians, of the CPU-time
medians, and the median of the per-round ratios with its quartiles). The target is a ratio of at most 2.
"our fused LSTM" is ``mnemonet.build("lstm", ...)`` when it is registered, else ``torch.nn.LSTM``
(which runs the same fused kernels); the output says which.

Run: ``PYTHONPATH=src:benchmarks python benchmarks/bench_bn_lstm.py [--repeats 20] [--threads 1]``.

Measured 2026-12-05 with ``--repeats 15`` on the 2-core development machine, shared with other jobs (load
average 6-8, so every number moves by ±15 %); wall-clock ratio (paired median), before (commit 983cddc: BN of
W_x·x as one batched op outside the loop, fresh buffers every call) and after (``kernels/bn_lstm.py`` now:
W_x·x and its BN inside the loop, pooled workspaces, ``tricks.StepThreads``), both run the same minutes:

    threads  (B, T, I, H)           before        after
    1        (64, 100, 32, 128)     1.75 (1.75)   1.37 (1.37)
    1        (32, 100, 64, 512)     1.41 (1.39)   1.20 (1.20)
    2 (*)    (64, 100, 32, 128)     3.15 (2.59)   1.80 (1.60)
    2 (*)    (32, 100, 64, 512)     1.62 (1.65)   1.29 (1.25)

(*) with ``OMP_WAIT_POLICY=PASSIVE``: on a machine this loaded, 2 spinning OpenMP threads make every run
5-10× slower than with 1 thread and the ratios swing from 0.5 to 2.5 between rounds (plain ``--threads 2``
after: 1.37 (1.46) and 0.84 (1.05)); passive waiting keeps both models near their 1-thread times. On a
quiet machine the previous kernel measured 2.05 / 2.44 (1 / 2 threads) at the small shape.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

import mnemonet.models.bn_lstm  # noqa: F401  (registers "bn_lstm")
from common import paired_ratio
from mnemonet.models.registry import available, build

SHAPES = ((64, 100, 32, 128), (32, 100, 64, 512))


def reference_lstm(input_size: int, hidden_size: int) -> tuple[nn.Module, str]:
    """Our fused LSTM if registered, else torch.nn.LSTM, and its name."""
    with contextlib.suppress(ImportError):
        import mnemonet.models.cells  # noqa: F401  (registers "lstm" once it exists)
    if "lstm" in available():
        return build("lstm", input_size=input_size, hidden_size=hidden_size), 'mnemonet.build("lstm")'
    return nn.LSTM(input_size, hidden_size, batch_first=True), "torch.nn.LSTM"


def train_step(model: nn.Module, x: Tensor) -> Callable[[], None]:
    """A closure running forward, a sum loss and backward once."""

    def run() -> None:
        model.zero_grad(set_to_none=True)
        y, _ = model(x)
        y.sum().backward()

    return run


def timed(fn: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(shape: tuple[int, int, int, int], repeats: int, warmup: int) -> tuple[dict[str, list[float]], str]:
    """Wall and CPU seconds of training steps of BN-LSTM ("bn") and the reference LSTM ("ref") at one shape."""
    B, T, I, H = shape
    torch.manual_seed(0)
    x = torch.randn(B, T, I)
    bn = build("bn_lstm", input_size=I, hidden_size=H, max_length=T)
    ref, name = reference_lstm(I, H)
    runs = {"bn": train_step(bn, x), "ref": train_step(ref, x)}
    times: dict[str, list[float]] = {"bn": [], "ref": [], "bn_cpu": [], "ref_cpu": []}
    for i in range(warmup + repeats):
        for key, fn in runs.items():
            wall, cpu = timed(fn)
            if i >= warmup:
                times[key].append(wall)
                times[key + "_cpu"].append(cpu)
    return times, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats} (median)")
    print("median ms per forward+backward; wall clock, and CPU time of this process (robust to other load);")
    print("paired: median and quartiles over rounds of each round's wall-clock ratio bn_lstm / reference")
    for shape in SHAPES:
        times, name = bench(shape, args.repeats, args.warmup)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        paired, q1, q3 = paired_ratio(times["bn"], times["ref"])
        print(
            f"(B, T, I, H) = {shape}: bn_lstm {med['bn']:7.1f} ms, {name} {med['ref']:7.1f} ms, "
            f"ratio {med['bn'] / med['ref']:.2f} (wall) | bn_lstm {med['bn_cpu']:7.1f} ms, "
            f"reference {med['ref_cpu']:7.1f} ms, ratio {med['bn_cpu'] / med['ref_cpu']:.2f} (CPU) | "
            f"paired {paired:.2f} ({q1:.2f}-{q3:.2f})"
        )


if __name__ == "__main__":
    main()
