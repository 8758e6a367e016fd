"""RIMs and BRIMs vs torch.nn.LSTM of the same total size: sequence forward+backward, interleaved in one process.

Targets (B = 64, T = 64): RIMs with 6 modules x 100 units (k = 4) within 2x a 600-unit ``torch.nn.LSTM``;
BRIMs with two such layers within 3x a 2-layer 600-unit ``torch.nn.LSTM``. The public implementations
measure about 4.5x and 6x on CPU.

    python benchmarks/bench_rims.py [--threads N] [--repeats R] [--input-size D] [--dynamics lstm|gru]
"""

from __future__ import annotations

import argparse

import torch

from common import forward_backward, header, interleaved
from mnemonet.models.brims import brims
from mnemonet.models.rims import rims

TARGETS = {"rims": 2.0, "brims": 3.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--dynamics", choices=["lstm", "gru"], default="lstm")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, T, D = args.batch, args.steps, args.input_size
    n, h, k = 6, 100, 4
    print(header("RIMs / BRIMs vs torch.nn.LSTM, forward+backward"))
    print(f"B={B} T={T} input={D} modules={n}x{h} k={k} dynamics={args.dynamics} repeats={args.repeats}")
    print(f"{'model':6} {'reference':>22} {'ref ms':>8} {'ours ms':>8} {'ratio':>6} {'target':>7}")
    x = torch.randn(B, T, D)
    cases = [
        ("rims", rims(D, n, h, k, dynamics=args.dynamics), torch.nn.LSTM(D, n * h, batch_first=True), "LSTM(600)"),
        (
            "brims",
            brims(D, n, h, k, num_layers=2, dynamics=args.dynamics),
            torch.nn.LSTM(D, n * h, num_layers=2, batch_first=True),
            "LSTM(600, 2 layers)",
        ),
    ]
    for name, ours, ref, ref_name in cases:
        t = interleaved({"ref": forward_backward(ref, x), "ours": forward_backward(ours, x)}, args.repeats)
        ratio = t["ours"] / t["ref"]
        verdict = "ok" if ratio <= TARGETS[name] else "MISSED"
        print(
            f"{name:6} {ref_name:>22} {t['ref'] * 1e3:8.1f} {t['ours'] * 1e3:8.1f} {ratio:6.2f} "
            f"{'<= ' + str(TARGETS[name]):>7} {verdict}"
        )


if __name__ == "__main__":
    main()
