"""Was RIMs' gap to the LSTM under noise the learning rate? Each model's rate chosen on clean validation digits.

The -small digits presets give every model Adam 3e-3, picked for none of them. This script trains the
``rims_seq_mnist-small`` and ``rims_seq_mnist_lstm-small`` presets at each rate of ``RATES`` (nothing else
changed) over three seeds, picks each model's rate by its mean clean accuracy on the *validation* digits
(8x8, no noise; the noisy test plays no part in the choice), and scores the runs as ``experiments/rims.py``
scores the digits (held-out test digits at 8x8, clean and with noise std 0.3). The 3e-3 runs are those of
``experiments/rims.py``.

Run with ``PYTHONPATH=src:experiments .venv/bin/python experiments/rims_lr.py [--arm LSTM|RIMs]`` (one
torch thread; finished runs are skipped; two processes with one ``--arm`` each share the machine's two
cores); without ``--arm`` it trains what is missing and writes ``docs/results/rims_lr.md``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from common import markdown_table
from mnemonet.training.checkpoint import atomic_write_text
from rims import (
    AT_8X8_LABELS,
    DIGITS,
    EVAL_BATCH_SIZE,
    EVAL_BATCHES,
    ROOT,
    clean_and_noisy,
    evaluate_conditions,
    mean_sd_text,
    slug,
)

SEEDS = (0, 1, 2)
PRESET_RATE = 3e-3
RATES = (1e-3, 3e-3, 1e-2)
MODELS = ("LSTM", "RIMs")
PAGE = Path("docs/results/rims_lr.md")
LABELS = AT_8X8_LABELS  # clean and noisy test, at 8x8
COMMAND = "PYTHONPATH=src:experiments .venv/bin/python experiments/rims_lr.py"


def arm_name(model: str, rate: float) -> str:
    """Run folder prefix: the preset's rate reuses ``experiments/rims.py``'s runs."""
    return slug("digits", model if rate == PRESET_RATE else f"{model} lr {rate:g}")


def valid_accuracy(run_dir: Path) -> float:
    """Clean 8x8 accuracy (%) of a run's last checkpoint on 16 x 128 draws of the validation digits."""
    conditions = [("valid 8x8", {})]  # the validation split is clean and at the trained size
    scores = evaluate_conditions(run_dir, conditions, EVAL_BATCHES, EVAL_BATCH_SIZE, split="valid")["accuracy"]
    return 100 * scores["valid 8x8"]


def run(model: str, rate: float, seed: int) -> dict:
    """Train (unless done) and score one seed: ``{"seconds", "valid", <test labels>}`` in %."""
    name = arm_name(model, rate)
    overrides = [] if rate == PRESET_RATE else [f"trainer.lr={rate}"]
    record = clean_and_noisy(DIGITS[model], name, seed, ROOT, overrides)
    return {**record, "valid": valid_accuracy(ROOT / f"{name}-s{seed}")}


def report(results: dict[tuple[str, float], list[dict]]) -> str:
    """The page: every rate's means, each model's chosen rate, and the RIMs − LSTM gaps."""
    mean = statistics.mean
    rows = [
        [model, f"{rate:g}", *(mean_sd_text([r[k] for r in rs]) for k in ["valid", *LABELS])]
        for (model, rate), rs in results.items()
    ]
    chosen = {m: max(RATES, key=lambda rate: mean(r["valid"] for r in results[m, rate])) for m in MODELS}

    def gap(label: str, rates: dict[str, float]) -> float:
        return mean(r[label] for r in results["RIMs", rates["RIMs"]]) - mean(
            r[label] for r in results["LSTM", rates["LSTM"]]
        )

    preset = dict.fromkeys(MODELS, PRESET_RATE)
    per_seed = [
        [model, f"{rate:g}", str(seed), f"{r['valid']:.1f}", *(f"{r[k]:.1f}" for k in LABELS), f"{r['seconds']:.0f}"]
        for (model, rate), rs in results.items()
        for seed, r in zip(SEEDS, rs, strict=True)
    ]
    return f"""# RIMs vs LSTM under input noise, each with its own learning rate (controlled run)

{__doc__.split(chr(10) + chr(10))[1]}

Regenerate: `{COMMAND}`

Mean ± std over seeds {", ".join(map(str, SEEDS))}, %; "valid" is the clean validation accuracy that chooses the rate.

{markdown_table(["model", "Adam lr", "valid 8x8", *LABELS], rows)}

Chosen on validation: LSTM {chosen["LSTM"]:g}, RIMs {chosen["RIMs"]:g}. RIMs − LSTM on the test digits:

- each at its chosen rate: {gap(LABELS[0], chosen):+.1f} points clean, {gap(LABELS[1], chosen):+.1f} under noise;
- both at the presets' {PRESET_RATE:g}: {gap(LABELS[0], preset):+.1f} points clean,
  {gap(LABELS[1], preset):+.1f} under noise.

{markdown_table(["model", "Adam lr", "seed", "valid 8x8", *LABELS, "train s"], per_seed)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arm", choices=MODELS, help="train and score this model only (no page)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = (args.arm,) if args.arm else MODELS
    results = {(m, rate): [run(m, rate, seed) for seed in SEEDS] for m in models for rate in RATES}
    if args.arm is None:
        page = report(results)
        atomic_write_text(PAGE, page)
        print(page)


if __name__ == "__main__":
    main()
