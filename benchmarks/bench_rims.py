"""RIMs and BRIMs vs torch.nn.LSTM: sequence forward+backward, interleaved in one process.

Targets (B = 64, T = 64, CPU):

- official sizes: RIMs with 6 modules x 100 units (k = 4) within 1.5x a 600-unit ``torch.nn.LSTM``; BRIMs with
  two such layers within 3x a 2-layer 600-unit ``torch.nn.LSTM``. Measured on this project's 2-core CPU
  (issue 12), the official RIMs code (anirudh9119/RIMs ``BlocksCore``) takes about 7.1x LSTM(600) and
  dido1998's Recurrent-Independent-Mechanisms about 2.2x;
- small sizes: the ``rims_seq_mnist-small`` model, built from the preset (the pixel rounded to 0/1 and
  embedded in 16 dimensions, 6 modules x 16 units, k = 4) within 4x the ``torch.nn.LSTM`` of about the same
  number of parameters (115 units on the pixel).

Measured here with RIMs' whole-sequence kernel and its C step (``kernels/rims_sequence.py``,
``kernels/rims_native_body.h``) on a quiet machine, ratios at --threads 1 / 2 (--repeats 10): RIMs 1.08x / 1.19x,
BRIMs 2 layers 1.81x / 2.45x (no kernel), rims-small 2.50x / 3.60x; all met. Before the C step: RIMs 1.36x /
1.82x, rims-small 5.08x / 6.88x. docs/rims_differences.md ("Speed") says what made the difference.

    python benchmarks/bench_rims.py [--threads N] [--repeats R] [--input-size D] [--dynamics lstm|gru]
        [--cases rims,brims,rims-small]
"""

from __future__ import annotations

import argparse

import torch

from common import forward_backward, header, interleaved
from mnemonet.models import build
from mnemonet.models.brims import brims
from mnemonet.models.rims import rims
from mnemonet.training import load_config

TARGETS = {"rims": 1.5, "brims": 3.0, "rims-small": 4.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--dynamics", choices=["lstm", "gru"], default="lstm")
    parser.add_argument("--cases", default="rims,brims,rims-small", help="comma-separated subset to run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, T, D = args.batch, args.steps, args.input_size
    n, h, k = 6, 100, 4
    print(header("RIMs / BRIMs vs torch.nn.LSTM, forward+backward"))
    print(f"B={B} T={T} input={D} modules={n}x{h} k={k} dynamics={args.dynamics} repeats={args.repeats}")
    print(f"{'model':10} {'reference':>22} {'ref ms':>8} {'ours ms':>8} {'ratio':>6} {'target':>7}")
    x_wide = torch.randn(B, T, D)
    cases = [
        ("rims", rims(D, n, h, k, dynamics=args.dynamics), torch.nn.LSTM(D, n * h, batch_first=True), "LSTM(600)"),
        (
            "brims",
            brims(D, n, h, k, num_layers=2, dynamics=args.dynamics),
            torch.nn.LSTM(D, n * h, num_layers=2, batch_first=True),
            "LSTM(600, 2 layers)",
        ),
    ]
    small_kwargs = {**load_config("rims_seq_mnist-small").model.kwargs, "dynamics": args.dynamics}
    small = build("rims", input_size=1, **small_kwargs)  # the preset's model: pixel rounded to 0/1, embedded
    cases.append(("rims-small", small, torch.nn.LSTM(1, 115, batch_first=True), "LSTM(115), input 1"))
    inputs = {"rims-small": torch.rand(B, T, 1)}  # pixels in [0, 1]
    chosen = args.cases.split(",")
    for name, ours, ref, ref_name in cases:
        if name not in chosen:
            continue
        x = inputs.get(name, x_wide)
        t = interleaved({"ref": forward_backward(ref, x), "ours": forward_backward(ours, x)}, args.repeats)
        ratio = t["ours"] / t["ref"]
        verdict = "ok" if ratio <= TARGETS[name] else "MISSED"
        print(
            f"{name:10} {ref_name:>22} {t['ref'] * 1e3:8.1f} {t['ours'] * 1e3:8.1f} {ratio:6.2f} "
            f"{'<= ' + str(TARGETS[name]):>7} {verdict}"
        )


if __name__ == "__main__":
    main()
