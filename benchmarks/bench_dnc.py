"""DNC training-step speed against the PyPI package ``dnc==1.1.0``, and a scaling table of ours.

Comparison (interleaved in one process; the speed-up is the median of ``--repeats`` per-round ratios):
B = 16, N = 64, W = 32, R = 4, T = 41, an LSTM controller of ``--hidden`` units, input = output = 8; one
training step = forward, MSE loss, backward, gradient-norm clipping at 10, Adam. Target: ours >= 5x faster
(issue 16; issue 14 asked for 3x). Both run at each of ``--threads`` (default: 1 and mnemonet's default thread
count, ``DEFAULT_THREADS``), interleaved within each thread count.

Ours runs the whole-sequence node (``kernels.dnc_sequence``) with its memory step and the LSTM's pointwise
step in C (``kernels.native``, built once with the system C compiler and cached); the header line says
whether it did, or why not (then the torch steps run, about 1.9x slower per training step at 1 thread: 49 ms
against 26 ms, measured alternately on a loaded machine). ``MNEMONET_NATIVE=0`` forces the torch steps.

The reference is never a dependency of mnemonet. Install it beside the benchmark only:

    pip install --no-deps --target /tmp/dnc_pkg dnc==1.1.0
    python benchmarks/bench_dnc.py [--dnc-path /tmp/dnc_pkg] [--threads 1,2] [--repeats 20] [--hidden 128]
    python benchmarks/bench_dnc.py --scaling          # also the N = 64 ... 4096 dense / ... 16384 top-K link table

Configuring ``dnc.DNC`` like ours (read from its source): ``rnn_type="lstm", num_layers=1,
num_hidden_layers=1`` (its default stacks two LSTM layers), ``nr_cells=N, cell_size=W, read_heads=R``,
``clip=0`` (its default clamps the controller output to ±20; ours does not), one interface ``nn.Linear`` as
ours (``independent_linears=False``), output ``nn.Linear([h; r]) -> input_size`` (it forces output size =
input size, so both use 8), and a fresh memory per call (``reset_experience=True``). Known defects that
need no shim here: it concatenates the *initial* read vectors to every input (``last_read`` is never
updated), so its controller never sees r_{t-1} (same arithmetic cost, wrong model); its allocation
``squeeze()`` breaks batch size 1; it re-draws a random initial controller state on every call.

The scaling table runs each configuration in a fresh subprocess and reports the median time of a few
training steps and their peak resident memory above the resident memory before them (Linux VmHWM after a
reset through /proc/self/clear_refs; elsewhere ru_maxrss), with B shrinking as N grows so that B·N stays
near 1024, and T = ``--scaling-steps``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch

from common import header, interleaved_runs, median_time_and_peak, paired_ratio
from mnemonet._checks import parse_positive_ints
from mnemonet.kernels import native
from mnemonet.models.dnc import build_dnc
from mnemonet.training.device import DEFAULT_THREADS

TARGET = 5.0  # issue 16 (issue 14 asked for 3)
B, N, W, R, T, IO = 16, 64, 32, 4, 41, 8


def load_reference(path: str) -> type | None:
    """``dnc.DNC`` from ``path`` (put on sys.path for this process only), or None if it is not there."""
    if path and Path(path).is_dir() and path not in sys.path:
        sys.path.insert(0, path)
    try:
        return importlib.import_module("dnc").DNC
    except ImportError:
        return None


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, target: torch.Tensor, **kw):
    """A closure: forward, MSE, backward, clip grad-norm to 10, Adam step."""

    def run() -> None:
        opt.zero_grad(set_to_none=True)
        y = model(x, **kw)[0]
        loss = torch.nn.functional.mse_loss(y, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()

    return run


def compare(args: argparse.Namespace) -> None:
    ref_cls = load_reference(args.dnc_path)
    print(header("DNC training step vs dnc==1.1.0 (PyPI)", "per row"))
    print(f"B={B} N={N} W={W} R={R} T={T} hidden={args.hidden} input=output={IO} repeats={args.repeats}")
    if ref_cls is None:
        print(
            f"SKIPPED: package 'dnc' not found on {args.dnc_path!r}; install it with "
            "`pip install --no-deps --target /tmp/dnc_pkg dnc==1.1.0` (never into mnemonet's environment)"
        )
        return
    torch.manual_seed(0)
    x, target = torch.randn(B, T, IO), torch.randn(B, T, IO)
    ref = ref_cls(
        input_size=IO, hidden_size=args.hidden, rnn_type="lstm", num_layers=1, num_hidden_layers=1,
        nr_cells=N, cell_size=W, read_heads=R, batch_first=True, clip=0,
    )  # fmt: skip
    ours = build_dnc(input_size=IO, output_size=IO, hidden_size=args.hidden, memory_size=N, word_size=W, num_reads=R)
    n_ref = sum(p.numel() for p in ref.parameters())
    n_ours = sum(p.numel() for p in ours.parameters())
    print(f"parameters: dnc==1.1.0 {n_ref}, ours {n_ours}")
    lib = native.library()
    where = "C (kernels.native)" if lib else f"torch ({native.unavailable_reason()})"
    print(f"ours: memory and LSTM steps in {where}")
    fns = {
        "ref": train_step(
            ref, torch.optim.Adam(ref.parameters()), x, target, hx=(None, None, None), reset_experience=True
        ),
        "ours": train_step(ours, torch.optim.Adam(ours.parameters()), x, target),
    }
    print(f"{'threads':>7} {'dnc==1.1.0 ms':>14} {'ours ms':>8} {'speedup':>8} {'quartiles':>11} {'target':>7}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        runs = interleaved_runs(fns, repeats=args.repeats)
        t = {name: statistics.median(ts) for name, ts in runs.items()}
        speedup, q1, q3 = paired_ratio(runs["ref"], runs["ours"])
        verdict = "ok" if speedup >= TARGET else "MISSED"
        note = "  <- mnemonet's default thread count here" if threads == DEFAULT_THREADS else ""
        print(
            f"{threads:7d} {t['ref'] * 1e3:14.1f} {t['ours'] * 1e3:8.1f} {speedup:7.2f}x {q1:5.2f}-{q3:4.2f}x "
            f"{'>= ' + str(TARGET):>7} {verdict}{note}"
        )
    print(f"(each row: medians of {args.repeats} interleaved rounds; speed-up = median of the per-round ratios)")


def one_config(n: int, b: int, steps: int, sparse: int | None, repeats: int) -> dict:
    """Time a few training steps of one configuration; peak resident memory above the RSS before them."""
    torch.manual_seed(0)
    model = build_dnc(
        input_size=IO, output_size=IO, hidden_size=64, memory_size=n, word_size=W, num_reads=R, link_top_k=sparse
    )
    x, target = torch.randn(b, steps, IO), torch.randn(b, steps, IO)
    step = train_step(model, torch.optim.Adam(model.parameters()), x, target)
    seconds, peak_mib = median_time_and_peak(step, repeats)
    return {"ms": seconds * 1e3, "peak_mib": peak_mib}


def scaling(args: argparse.Namespace) -> None:
    print()
    print(header("DNC scaling: one training step (ours)", str(args.scaling_threads)))
    print(f"W={W} R={R} hidden=64 T={args.scaling_steps} steps-timed={args.scaling_repeats} (median); top-K K=8")
    print(f"{'N':>6} {'B':>3} {'link':>10} {'ms/step':>9} {'ms/(B·T)':>9} {'peak MiB':>9}")
    dense = [n for n in (64, 128, 256, 512, 1024, 2048, 4096) if n <= args.max_dense]
    sparse = [n for n in (64, 256, 1024, 4096, 16384) if n <= args.max_sparse]
    for kind, sizes in (("dense", dense), ("top-K K=8", sparse)):
        for n in sizes:
            b = max(1, min(16, 1024 // n))
            cmd = [
                sys.executable, __file__, "--one", json.dumps(
                    {"n": n, "b": b, "steps": args.scaling_steps, "sparse": 8 if kind != "dense" else None,
                     "repeats": args.scaling_repeats, "threads": args.scaling_threads}
                ),
            ]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), check=False)
            if out.returncode != 0:
                print(f"{n:6d} {b:3d} {kind:>10} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            per = r["ms"] / (b * args.scaling_steps)
            print(f"{n:6d} {b:3d} {kind:>10} {r['ms']:9.1f} {per:9.3f} {r['peak_mib']:9.1f}", flush=True)


def _thread_counts(text: str) -> list[int]:
    """``"1,2"`` -> ``[1, 2]`` for ``--threads`` (argparse reports the error)."""
    try:
        return parse_positive_ints(text, "--threads")
    except ValueError as err:  # argparse names the option itself
        raise argparse.ArgumentTypeError(str(err).removeprefix("--threads: ")) from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--threads", type=_thread_counts, default=sorted({1, DEFAULT_THREADS}), help="comma-separated thread counts"
    )
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--dnc-path", default=os.environ.get("DNC_PKG_PATH", "/tmp/dnc_pkg"))
    parser.add_argument("--scaling", action="store_true", help="also print the scaling table")
    parser.add_argument("--scaling-steps", type=int, default=16, help="T for the scaling table")
    parser.add_argument("--scaling-repeats", type=int, default=3)
    parser.add_argument("--scaling-threads", type=int, default=1)
    parser.add_argument("--max-dense", type=int, default=4096)
    parser.add_argument("--max-sparse", type=int, default=16384)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        cfg = json.loads(args.one)
        torch.set_num_threads(cfg["threads"])
        print(json.dumps(one_config(cfg["n"], cfg["b"], cfg["steps"], cfg["sparse"], cfg["repeats"])))
        return
    compare(args)
    if args.scaling:
        scaling(args)


if __name__ == "__main__":
    main()
