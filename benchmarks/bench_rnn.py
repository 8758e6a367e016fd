"""Our LSTM and GRU vs torch.nn.LSTM/GRU: sequence forward+backward, interleaved in one process.

Target: ours / torch time <= 1.05 (at least 0.95 of torch's speed).

    python benchmarks/bench_rnn.py [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse

import torch

import mnemonet
from common import forward_backward, header, interleaved

SHAPES = [(64, 100, 32, 128), (32, 100, 64, 512)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(header("mnemonet vs torch.nn, forward+backward"))
    print(f"{'model':5} {'(B, T, I, H)':>20} {'torch ms':>9} {'ours ms':>9} {'ours/torch':>10}")
    for kind, ref_cls in (("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)):
        for B, T, I, H in SHAPES:
            ref = ref_cls(I, H, batch_first=True)
            ours = mnemonet.build(kind, input_size=I, hidden_size=H)
            ours.load_state_dict(ref.state_dict())
            x = torch.randn(B, T, I)
            t = interleaved({"torch": forward_backward(ref, x), "ours": forward_backward(ours, x)}, args.repeats)
            shape = f"({B}, {T}, {I}, {H})"
            print(f"{kind:5} {shape:>20} {t['torch'] * 1e3:9.2f} {t['ours'] * 1e3:9.2f} {t['ours'] / t['torch']:10.3f}")


if __name__ == "__main__":
    main()
