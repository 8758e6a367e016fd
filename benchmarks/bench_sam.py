"""SAM and SDNC (``memory="sam"``, ``"sdnc"``) against the dense DNC: time and memory of forward + backward per step.

N = 1k ... 64k. Configuration: B = 16, W = 32, R = 4 read heads, K = ``--k`` (4), an LSTM controller of 64,
input = output = 8, T = ``--steps`` (8) steps; one call = forward over T steps, a squared-output loss,
backward. Each (memory, N) runs in a fresh subprocess with ``torch.set_num_threads(1)``: the median of
``--repeats`` calls after one warm-up, divided by T, and the peak resident memory of the timed calls above the
resident memory before them (Linux VmHWM after a reset through /proc/self/clear_refs,
``common.median_time_and_peak``). The dense DNC keeps an N × N link per batch element and step for
backpropagation, so it runs only where its estimated peak (its measured peak at the smallest N, scaled by N²)
stays under ``--limit-mib``; larger N are marked skipped rather than run.

    python benchmarks/bench_sam.py [--sizes 1024,4096,16384,65536] [--steps 8] [--repeats 3] [--k 4]

The checks printed at the end, for SAM and SDNC: the peak at the largest N under 1 GiB, and the time per step
growing sublinearly in N (time ratio largest/smallest N below the ratio of the N).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

from common import header, median_time_and_peak
from mnemonet._checks import parse_positive_ints
from mnemonet.models.dnc import build_dnc

B, W, R, HIDDEN, IO = 16, 32, 4, 64, 8


def one_config(memory: str, n: int, steps: int, repeats: int, k: int) -> dict:
    """Median seconds of forward + backward over ``steps`` steps, and the peak MiB above the baseline."""
    torch.manual_seed(0)
    model = build_dnc(
        input_size=IO, output_size=IO, hidden_size=HIDDEN, memory_size=n, word_size=W, num_reads=R,
        memory=memory, sparse_k=k,
    )  # fmt: skip
    x = torch.randn(B, steps, IO)

    def call() -> None:
        model.zero_grad(set_to_none=True)
        y = model(x)[0]
        y.square().mean().backward()

    call()  # warm-up
    seconds, peak_mib = median_time_and_peak(call, repeats)
    return {"ms_per_step": seconds * 1e3 / steps, "peak_mib": peak_mib}


def run_child(memory: str, n: int, args: argparse.Namespace) -> dict | str:
    """One configuration in a fresh interpreter (its own peak memory); the result or the error's last line."""
    cfg = {"memory": memory, "n": n, "steps": args.steps, "repeats": args.repeats, "k": args.k}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(cfg)], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode != 0:
        return "failed: " + " ".join(out.stderr.strip().splitlines()[-1:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1024,4096,16384,65536", help="comma-separated memory sizes N")
    parser.add_argument("--steps", type=int, default=8, help="T, steps per call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--k", type=int, default=4, help="K, non-zeros per SAM read weighting")
    parser.add_argument("--limit-mib", type=float, default=2500.0, help="skip dense runs estimated above this")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        torch.set_num_threads(1)
        cfg = json.loads(args.one)
        print(json.dumps(one_config(cfg["memory"], cfg["n"], cfg["steps"], cfg["repeats"], cfg["k"])))
        return
    try:
        sizes = parse_positive_ints(args.sizes, "--sizes", "1024,4096")
    except ValueError as err:
        parser.error(str(err))
    print(header("SAM and SDNC vs the dense DNC: forward + backward per step, one process per row", "1"))
    print(f"B={B} W={W} R={R} hidden={HIDDEN} T={args.steps} K={args.k} repeats={args.repeats} (median)")
    print(f"{'N':>6} {'memory':>6} {'ms/step':>9} {'peak MiB':>9}")
    results: dict[tuple[str, int], dict] = {}
    dense_peak_at: tuple[int, float] | None = None
    for n in sizes:
        for memory in ("dense", "sam", "sdnc"):
            if memory == "dense" and dense_peak_at is not None:
                n0, peak0 = dense_peak_at
                estimate = peak0 * (n / n0) ** 2
                if estimate > args.limit_mib:
                    est = f"~{estimate:.0f}"
                    print(f"{n:6d} {memory:>6} {'skipped':>9} {est:>9}  (estimated peak, N² link)")
                    continue
            r = run_child(memory, n, args)
            if isinstance(r, str):
                print(f"{n:6d} {memory:>6} {r}")
                continue
            results[memory, n] = r
            if memory == "dense" and dense_peak_at is None:
                dense_peak_at = (n, r["peak_mib"])
            print(f"{n:6d} {memory:>6} {r['ms_per_step']:9.2f} {r['peak_mib']:9.1f}", flush=True)
    lo, hi = sizes[0], sizes[-1]
    for memory in ("sam", "sdnc"):
        if (memory, lo) not in results or (memory, hi) not in results:
            continue
        ratio = results[memory, hi]["ms_per_step"] / results[memory, lo]["ms_per_step"]
        verdict = "sublinear" if ratio < hi / lo else "NOT sublinear"
        peak = results[memory, hi]["peak_mib"]
        print(
            f"{memory}: time per step N={hi} / N={lo} = {ratio:.1f}x for {hi / lo:.0f}x the slots ({verdict}); "
            f"peak at N={hi}, B={B}: {peak:.0f} MiB ({'fits' if peak < 1024 else 'DOES NOT fit'} in 1 GiB)"
        )
    for n in sizes:
        for memory in ("sam", "sdnc"):
            if ("dense", n) in results and (memory, n) in results:
                d, s = results["dense", n], results[memory, n]
                print(
                    f"N={n}: dense/{memory} time {d['ms_per_step'] / s['ms_per_step']:.1f}x, "
                    f"memory {d['peak_mib'] / max(s['peak_mib'], 1e-9):.1f}x"
                )


if __name__ == "__main__":
    main()
