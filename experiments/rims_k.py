"""How does RIMs' gap to the LSTM under input noise depend on k, the number of active modules? A controlled run.

``rims_seq_mnist-small`` activates k = 4 of its 6 modules at every step, as the official MNIST runs. This script
trains the preset with k = 3, 4, 5 and 6 (all active; ``rims_seq_mnist_all-small``), nothing else changed, and
the LSTM preset, over twelve seeds, and scores them as ``experiments/rims.py`` scores the digits (held-out test
digits at 8x8, clean and with noise std 0.3), plus the clean accuracy on the validation digits. Seeds 0-2 of
k = 4, k = 6 and the LSTM are the runs of ``experiments/rims.py``; their seeds 3-11 (k = 4, LSTM) those of
``experiments/rims_dropout_draw.py``; k = 3 and 5 are arms of ``experiments/rims_noise.py``.

A second table puts the noise on one span of the image's rows only (``rims_noise.position_probe``, seeds 0-2).

Run with ``PYTHONPATH=src:experiments .venv/bin/python experiments/rims_k.py [--seeds S ...]`` (one torch
thread; finished runs are skipped; the page needs every seed); it writes ``docs/results/rims_k.md``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from common import markdown_table
from mnemonet.training.checkpoint import atomic_write_text
from rims import AT_8X8_LABELS, DIGITS, ROOT, clean_and_noisy, mean_sd_text, slug
from rims_lr import valid_accuracy
from rims_noise import ABLATIONS, arm_slug, position_table

SEEDS = tuple(range(12))
PROBE_SEEDS = (0, 1, 2)
PAGE = Path("docs/results/rims_k.md")
LABELS = AT_8X8_LABELS  # clean and noisy test, at 8x8
COMMAND = "PYTHONPATH=src:experiments .venv/bin/python experiments/rims_k.py"
ARMS = {  # name: (preset, overrides, folder name of the runs)
    "LSTM": (DIGITS["LSTM"], [], slug("digits", "LSTM")),
    "RIMs, k = 3": (*ABLATIONS["RIMs, k = 3"], arm_slug("RIMs, k = 3")),
    "RIMs, k = 4 (the preset)": (DIGITS["RIMs"], [], slug("digits", "RIMs")),
    "RIMs, k = 5": (*ABLATIONS["RIMs, k = 5"], arm_slug("RIMs, k = 5")),
    "RIMs, k = 6 (all active)": (DIGITS["RIMs (all active)"], [], slug("digits", "RIMs (all active)")),
}


def run(arm: str, seed: int) -> dict:
    """Train (unless done) and score one seed: ``{"seconds", "valid", <test labels>}`` in %."""
    preset, overrides, name = ARMS[arm]
    record = clean_and_noisy(preset, name, seed, ROOT, overrides)
    return {**record, "valid": valid_accuracy(ROOT / f"{name}-s{seed}")}


def report(results: dict[str, list[dict]]) -> str:
    """The page: each arm's means, its gap to the LSTM over all seeds and over seeds 0-2, and the position probe."""
    mean = statistics.mean
    lstm = results["LSTM"]
    rows = []
    for arm, rs in results.items():
        gaps = ["–", "–"]
        if arm != "LSTM":
            gaps = [
                f"{mean(r[LABELS[1]] for r in rs) - mean(r[LABELS[1]] for r in lstm):+.1f}",
                f"{mean(r[LABELS[1]] for r in rs[:3]) - mean(r[LABELS[1]] for r in lstm[:3]):+.1f}",
            ]
        rows.append([arm, len(rs), mean_sd_text([r["valid"] for r in rs]),
                     *(mean_sd_text([r[k] for r in rs]) for k in LABELS), *gaps])  # fmt: skip
    headers = ["arm", "seeds", "valid 8x8", *LABELS, "noise: − LSTM, all seeds", "noise: − LSTM, seeds 0-2"]
    per_seed = [
        [arm, str(seed), f"{r['valid']:.1f}", *(f"{r[k]:.1f}" for k in LABELS), f"{r['seconds']:.0f}"]
        for arm, rs in results.items()
        for seed, r in zip(SEEDS, rs, strict=True)
    ]
    return f"""# RIMs vs LSTM under input noise: how many modules are active (controlled run)

{__doc__.split(chr(10) + chr(10))[1]}

Regenerate: `{COMMAND}`

Mean ± std over seeds, %; "valid" is the clean accuracy on the validation digits; the last two columns are
the arm's mean noisy test accuracy minus the LSTM's, in points.

{markdown_table(headers, rows)}

Points lost against clean test digits when the noise (std 0.3) is on every step or on the steps of one span of
rows only (1024 held-out digits, the draws of `rims_noise.probe`; mean over seeds {", ".join(map(str, PROBE_SEEDS))}):

{position_table({arm: name for arm, (_, _, name) in ARMS.items()}, PROBE_SEEDS)}

{markdown_table(["arm", "seed", "valid 8x8", *LABELS, "train s"], per_seed)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", help="train and score these seeds only (no page)")
    parser.add_argument("--arm", choices=list(ARMS), help="with --seeds: this arm only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.seeds:
        for arm in [args.arm] if args.arm else ARMS:
            for seed in args.seeds:
                run(arm, seed)
        return
    results = {arm: [run(arm, seed) for seed in SEEDS] for arm in ARMS}
    page = report(results)
    atomic_write_text(PAGE, page)
    print(page)


if __name__ == "__main__":
    main()
