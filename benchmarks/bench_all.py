"""Every speed target of mnemonet in one table: each row times ours against its reference, interleaved.

Rows (forward + backward of a sequence, or a DNC training step), at 1 and 2 intra-op threads:

- ``lstm``, ``gru``, ``rnn`` against ``torch.nn`` (same weights): ours / torch <= 1.05;
- ``bn_lstm`` against our LSTM of the same size: <= 2;
- ``rims`` (6 x 100 units, k = 4) against a 600-unit ``torch.nn.LSTM``: <= 1.5 (issue 12); ``brims`` (two such
  layers) against a 2-layer one: <= 3; ``rims-small`` (the ``rims_seq_mnist-small`` model) against an LSTM of
  115 units on the pixel (about its parameter count): <= 4 (issue 12);
- ``dnc`` (the paper's configuration, as ``bench_dnc.py``) against ``dnc==1.1.0``: ours / theirs <= 1/5
  (issue 16; issue 14 asks >= 3x), skipped when that package is not installed beside the benchmark (see
  ``bench_dnc.py``).

The ratio of a row is the median of per-round ratios (``common.paired_ratio``); each script of this folder
prints more detail for its own rows. ``make bench`` runs this file.

    python benchmarks/bench_all.py [--threads 1,2] [--repeats 10] [--dnc-path /tmp/dnc_pkg]
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

import torch

import mnemonet
from bench_dnc import IO, N, R, T, W, _thread_counts, load_reference, train_step
from bench_dnc import B as DNC_B
from common import forward_backward, header, interleaved_runs, paired_ratio
from mnemonet.models.brims import brims
from mnemonet.models.rims import rims
from mnemonet.training import load_config

SHAPES = [(64, 100, 32, 128), (32, 100, 64, 512)]
Case = tuple[str, str, float, Callable[[], dict[str, Callable[[], None]]]]


def sequence_case(name: str, shape: tuple[int, int, int, int], target: float, ours, ref) -> Case:
    """A row timing forward+backward of ``ours()`` and ``ref()`` on a random `[B, T, I]` batch."""
    B, T_, I, _ = shape

    def make() -> dict[str, Callable[[], None]]:
        torch.manual_seed(0)
        x = torch.randn(B, T_, I)
        return {"ours": forward_backward(ours(), x), "ref": forward_backward(ref(), x)}

    return name, str(shape), target, make


def torch_pair(kind: str, I: int, H: int):
    """Builders of ours and torch.nn's cell ``kind`` with the same weights."""
    ref = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[kind](I, H, batch_first=True)
    ours = mnemonet.build(kind, input_size=I, hidden_size=H)
    ours.load_state_dict(ref.state_dict())
    return (lambda: ours), (lambda: ref)


def cases(dnc_path: str) -> list[Case]:
    out: list[Case] = []
    for kind in ("lstm", "gru", "rnn"):
        for shape in SHAPES:
            ours, ref = torch_pair(kind, shape[2], shape[3])
            out.append(sequence_case(f"{kind} / torch.nn", shape, 1.05, ours, ref))
    for shape in SHAPES:
        _, T_, I, H = shape
        out.append(sequence_case(
            "bn_lstm / our lstm", shape, 2.0,
            lambda I=I, H=H, T_=T_: mnemonet.build("bn_lstm", input_size=I, hidden_size=H, max_length=T_),
            lambda I=I, H=H: mnemonet.build("lstm", input_size=I, hidden_size=H),
        ))  # fmt: skip
    rims_shape = (64, 64, 64, 600)
    out.append(sequence_case(
        "rims / LSTM(600)", rims_shape, 1.5, lambda: rims(64, 6, 100, 4),
        lambda: torch.nn.LSTM(64, 600, batch_first=True),
    ))  # fmt: skip
    out.append(sequence_case(
        "brims / LSTM(600) x2", rims_shape, 3.0, lambda: brims(64, 6, 100, 4, num_layers=2),
        lambda: torch.nn.LSTM(64, 600, num_layers=2, batch_first=True),
    ))  # fmt: skip
    small = {**load_config("rims_seq_mnist-small").model.kwargs}
    out.append(sequence_case(
        "rims-small / LSTM(115)", (64, 64, 1, 115), 4.0, lambda: mnemonet.build("rims", input_size=1, **small),
        lambda: torch.nn.LSTM(1, 115, batch_first=True),
    ))  # fmt: skip
    ref_cls = load_reference(dnc_path)
    if ref_cls is not None:

        def make_dnc() -> dict[str, Callable[[], None]]:
            torch.manual_seed(0)
            x, target = torch.randn(DNC_B, T, IO), torch.randn(DNC_B, T, IO)
            ref = ref_cls(
                input_size=IO, hidden_size=128, rnn_type="lstm", num_layers=1, num_hidden_layers=1,
                nr_cells=N, cell_size=W, read_heads=R, batch_first=True, clip=0,
            )  # fmt: skip
            ours = mnemonet.build(
                "dnc", input_size=IO, output_size=IO, hidden_size=128, memory_size=N, word_size=W, num_reads=R
            )
            kw = {"hx": (None, None, None), "reset_experience": True}
            return {
                "ours": train_step(ours, torch.optim.Adam(ours.parameters()), x, target),
                "ref": train_step(ref, torch.optim.Adam(ref.parameters()), x, target, **kw),
            }

        out.append(("dnc / dnc==1.1.0", f"(B={DNC_B}, T={T}, N={N})", 1 / 5, make_dnc))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=_thread_counts, default=[1, 2], help="e.g. 1,2")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--dnc-path", default=os.environ.get("DNC_PKG_PATH", "/tmp/dnc_pkg"))
    args = parser.parse_args()
    print(header("mnemonet speed targets: ours / reference time, forward+backward", str(args.threads)))
    print(
        f"{'row':22} {'shape':>20} {'thr':>3} {'ours ms':>9} {'ref ms':>9} {'ratio':>6} {'quartiles':>11} {'target':>7}"
    )
    rows = cases(args.dnc_path)
    if not any(name.startswith("dnc") for name, *_ in rows):
        print(f"(dnc row skipped: install dnc==1.1.0 with `pip install --no-deps --target {args.dnc_path} dnc==1.1.0`)")
    for name, shape, target, make in rows:
        fns = make()
        for threads in args.threads:
            torch.set_num_threads(threads)
            runs = interleaved_runs(fns, repeats=args.repeats, warmup=2)
            ratio, q1, q3 = paired_ratio(runs["ours"], runs["ref"])
            ms = {k: statistics.median(v) * 1e3 for k, v in runs.items()}
            verdict = "ok" if ratio <= target else "MISSED"
            print(
                f"{name:22} {shape:>20} {threads:3d} {ms['ours']:9.1f} {ms['ref']:9.1f} {ratio:6.2f} "
                f"{q1:5.2f}-{q3:5.2f} {'<= ' + format(target, '.3g'):>7} {verdict}",
                flush=True,
            )
    print(f"(ratio: median over {args.repeats} interleaved rounds of ours / reference; quartiles of those ratios)")


if __name__ == "__main__":
    main()
