"""RIMs, RIMs with every module active, and BRIMs against an LSTM on the RIMs papers' own tests, at CPU scale.

Issue 12's evidence. Two experiments, three seeds per arm, runs one at a time on one torch thread:

- ``copy_delay`` (Goyal et al. 2019, section 4.2): 5 symbols from 8, trained at a blank delay of 10 and
  tested at 10, 20 (2x), 50 (5x) and 100 (10x);
- sequential 8x8 digits pixel by pixel (section 4.1 at CPU scale): tested at 8x8, at 9/10/11 px with
  nearest-neighbour upsampling as the paper, and at 8x8 with Gaussian pixel noise, with the share of steps
  whose active set of modules changes under noise.

Runs go in ``runs/experiments/rims/``; the report is ``docs/results/rims.md`` with figures in
``docs/results/rims/``. Runs are done in order of priority (the arms the issue's acceptance rests on
first); re-running skips finished runs and evaluations. ``--report`` writes the page from the runs that
have finished, training nothing.

Run with ``PYTHONPATH=src:experiments .venv/bin/python experiments/rims.py`` (``--quick``: a seconds-long
smoke run that writes under ``runs/experiments/rims-quick/`` only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from common import cached, fmt, markdown_table, mean_std, num_params, plot_curves, report_paths, run_arm
from mnemonet.app import evaluate_run, load_run
from mnemonet.training import load_config
from mnemonet.training.checkpoint import atomic_write_text

SEEDS = (0, 1, 2)
NOISE = 0.3
COPY = {
    "LSTM": "copy_delay_lstm-small",
    "RIMs": "copy_delay_rims-small",
    "RIMs (all active)": "copy_delay_rims_all-small",
    "BRIMs": "copy_delay_brims-small",
}
DIGITS = {
    "LSTM": "rims_seq_mnist_lstm-small",
    "RIMs": "rims_seq_mnist-small",
    "RIMs (all active)": "rims_seq_mnist_all-small",
    "BRIMs": "brims_seq_mnist-small",
    "LSTM (raw pixel)": "rims_seq_mnist_lstm_raw-small",
}
# (column label, overrides of the task for the test split)
COPY_CONDITIONS = tuple(
    (f"delay {d}" + (" (trained)" if d == 10 else ""), {"test_delay": d}) for d in (10, 20, 50, 100)
)
DIGIT_CONDITIONS = (
    ("8x8 (trained)", {"test_resolution": 8, "test_noise": 0.0}),
    ("9x9", {"test_resolution": 9, "test_noise": 0.0}),
    ("10x10", {"test_resolution": 10, "test_noise": 0.0}),
    ("11x11", {"test_resolution": 11, "test_noise": 0.0}),
    (f"8x8 + noise {NOISE}", {"test_resolution": 8, "test_noise": NOISE}),
)
AT_8X8 = tuple(c for c in DIGIT_CONDITIONS if c[0].startswith("8x8"))  # clean and noisy, at the trained size
AT_8X8_LABELS = [label for label, _ in AT_8X8]
ROOT = report_paths("rims", quick=False)[0]  # the runs of this script and of the rims_*.py controlled runs
# priority order: what the acceptance rests on first (copy and noise, RIMs and LSTM), the ablations last
PLAN = [
    ("copy", "RIMs"),
    ("copy", "LSTM"),
    ("digits", "LSTM"),
    ("digits", "RIMs"),
    ("copy", "RIMs (all active)"),
    ("copy", "BRIMs"),
    ("digits", "LSTM (raw pixel)"),
    ("digits", "RIMs (all active)"),
    ("digits", "BRIMs"),
]
EXPERIMENTS = {"copy": (COPY, COPY_CONDITIONS), "digits": (DIGITS, DIGIT_CONDITIONS)}
EVAL_BATCHES, EVAL_BATCH_SIZE = 16, 128
QUICK = [
    "trainer.steps=4",
    "trainer.batch_size=8",
    "trainer.eval_every=2",
    "trainer.eval_batches=1",
    "trainer.checkpoint_every=2",
    "trainer.tensorboard=false",
]
REGENERATE = "PYTHONPATH=src:experiments .venv/bin/python experiments/rims.py"


def clean_and_noisy(preset: str, name: str, seed: int, root: Path, overrides: Sequence[str] = ()) -> dict:
    """Train a digits arm (unless done) and score it at 8x8, clean and noisy: ``{"seconds", label: percent}``."""
    record = run_arm(preset, name, seed, root, overrides)
    scores = evaluate_conditions(root / f"{name}-s{seed}", AT_8X8, EVAL_BATCHES, EVAL_BATCH_SIZE)["accuracy"]
    return {"seconds": record["seconds"], **{label: 100 * acc for label, acc in scores.items()}}


def mean_sd_text(values: Sequence[float]) -> str:
    """``"mean ± sd"`` with one decimal."""
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def slug(experiment: str, arm: str) -> str:
    """Folder name of an arm: ``copy-RIMs``, ``digits-RIMs-all-active``."""
    return f"{experiment}-" + re.sub(r"[^A-Za-z0-9]+", "-", arm).strip("-")


def evaluate_conditions(run_dir: str | Path, conditions, batches: int, batch_size: int, split: str = "test") -> dict:
    """Accuracy of a run's last checkpoint on ``split`` under every condition (task overrides), cached in
    ``eval.json`` (``conditions_<split>.json`` for another split: ``mnemonet eval`` writes ``eval_<split>.json``)."""

    def compute() -> dict:
        start = time.perf_counter()
        accuracy, params = {}, 0
        for label, task_overrides in conditions:
            run = load_run(run_dir, "last", [f"task.{k}={v}" for k, v in task_overrides.items()])
            params = num_params(run.model)
            with torch.no_grad():
                accuracy[label] = evaluate_run(run, split, batches=batches, batch_size=batch_size)["accuracy"]
        return {"accuracy": accuracy, "params": params, "eval_seconds": time.perf_counter() - start}

    key = {"size": f"{batches}x{batch_size}", "conditions": [[c[0], c[1]] for c in conditions]}
    return cached(Path(run_dir) / ("eval.json" if split == "test" else f"conditions_{split}.json"), key, compute)


def selection_shift(run_dir: str | Path, num: int = 128) -> float | None:
    """Share of time steps at which test noise changes a RIMs/BRIMs run's set of active modules.

    The same ``num`` held-out 8x8 digits are run clean and with Gaussian noise of std ``NOISE``; a step
    counts when any module's active flag differs (any layer for BRIMs). Cached in ``selection.json``.

    Returns:
        The share in [0, 1], or None for a model without module selection (the LSTM).
    """

    def compute() -> float | None:
        run = load_run(run_dir, "last")
        gen = torch.Generator().manual_seed(0)
        clean = run.task.sample_at_resolution(num, gen, 8, "test", 0.0).x  # (B, 64, 1)
        noisy = clean + NOISE * torch.randn(clean.shape, generator=gen)  # (B, 64, 1)
        with torch.no_grad():
            a, b = run.model.trace(clean)[2], run.model.trace(noisy)[2]
        # the active masks of every RIMs loop in the model ("core.core.active" behind an encoder), each
        # (B, T, n) or (B, T, L, n)
        names = [name for name in a if name.split(".")[-1] == "active"]
        if not names:
            return None
        changed = torch.stack([(a[name] != b[name]).flatten(2).any(-1) for name in names]).any(0)  # (B, T)
        return float(changed.float().mean())

    return cached(Path(run_dir) / "selection.json", {"images": num, "noise": NOISE, "traces": "any loop"}, compute)


def compare(recs: dict[str, list[dict]], arm: str, label: str, base: str = "LSTM") -> tuple[float, str]:
    """``arm`` minus ``base`` in points at ``label``, and ``"better"``/``"worse"`` on every seed or ``"overlap"``."""
    a = [r["accuracy"][label] for r in recs[arm]]
    b = [r["accuracy"][label] for r in recs[base]]
    diff = 100 * (mean_std(a)[0] - mean_std(b)[0])
    return diff, "better" if min(a) > max(b) else "worse" if max(a) < min(b) else "overlap"


def results_table(recs: dict[str, list[dict]], arms: dict[str, str], conditions) -> str:
    headers = ["model", "params", "seeds", *(c[0] for c in conditions), "train s / run"]
    rows = []
    for arm, rs in recs.items():
        accs = [fmt(r["accuracy"][c[0]] for r in rs) for c in conditions]
        m = mean_std(r["seconds"] for r in rs)[0]
        rows.append([f"{arm} (`{arms[arm]}`)", f"{rs[0]['params']:,}", len(rs), *accs, f"{m:.0f}"])
    return markdown_table(headers, rows)


def seed_table(recs: dict[str, list[dict]], conditions, shift: bool) -> str:
    headers = ["model", "seed", *(c[0] for c in conditions)] + (["active set changed by noise (%)"] if shift else [])
    rows = []
    for arm, rs in recs.items():
        for r in rs:
            row = [arm, r["seed"], *(f"{100 * r['accuracy'][c[0]]:.1f}" for c in conditions)]
            if shift:
                row.append("–" if r.get("shift") is None else f"{100 * r['shift']:.1f}")
            rows.append(row)
    return markdown_table(headers, rows)


def copy_claims(recs: dict[str, list[dict]]) -> list[str]:
    if "RIMs" not in recs or "LSTM" not in recs:
        return ["- Not enough finished runs to compare RIMs with the LSTM."]
    out = []
    for label in ("delay 20", "delay 50", "delay 100"):
        d, w = compare(recs, "RIMs", label)
        every = w == "better"
        out.append(
            f"- {label}: RIMs − LSTM = {d:+.1f} points; "
            + ("RIMs beat the LSTM on every seed." if every else f"not on every seed ({w}).")
        )
    trained = COPY_CONDITIONS[0][0]
    lstm_trained = mean_std(r["accuracy"][trained] for r in recs["LSTM"])[0]
    if lstm_trained < 2 / 8:  # below twice chance (1/8) at the delay it was trained on
        out.append(
            f"- Caveat: the LSTM did not learn the task even at the trained delay ({100 * lstm_trained:.1f}% at "
            f"delay 10, chance 12.5%) within {load_config(COPY['LSTM']).trainer.steps} steps, so the gap at longer "
            "delays shows that RIMs learn this task at this budget and the LSTM does not; it does not separate "
            "memory over longer delays from learning the task at all. RIMs' own drop from the trained delay to "
            "2x / 5x / 10x is the part of the paper's claim that this run tests."
        )
    else:
        out.append(
            f"- The LSTM learns the task at the trained delay ({100 * lstm_trained:.1f}% at delay 10) and loses it at "
            "twice the delay, as in the paper; RIMs keep part of it."
        )
    if "RIMs (all active)" in recs:
        all_trained = mean_std(r["accuracy"][trained] for r in recs["RIMs (all active)"])[0]
        if all_trained < 2 / 8:
            out.append(
                f"- RIMs with every module active stayed on the chance plateau ({100 * all_trained:.1f}% at the "
                "trained delay) on every seed, so the k = 4 vs all-active gaps below compare learning the task at "
                "all, not keeping it over a longer delay. Unexplained: the same cell learns the digits task."
            )
        for label in ("delay 20", "delay 50"):
            d, w = compare(recs, "RIMs", label, base="RIMs (all active)")
            out.append(f"- {label}: RIMs (k = 4) − RIMs (all active) = {d:+.1f} points ({w} on every seed)"
                       if w != "overlap" else f"- {label}: RIMs (k = 4) − RIMs (all active) = {d:+.1f} points "
                       "(the seeds overlap)")  # fmt: skip
    return out


def digit_claims(recs: dict[str, list[dict]]) -> list[str]:
    out = []
    noise = DIGIT_CONDITIONS[-1][0]
    for arm in recs:
        if arm in ("LSTM", "LSTM (raw pixel)") or "LSTM" not in recs:
            continue
        d, w = compare(recs, arm, noise)
        ok = "within 5 points of the LSTM or better" if d >= -5 else "more than 5 points below the LSTM"
        out.append(f"- {noise}: {arm} − LSTM = {d:+.1f} points (mean of {len(recs[arm])} seeds; {w}): {ok}.")
        for label in ("9x9", "10x10", "11x11"):
            d, w = compare(recs, arm, label)
            out.append(f"  - {label}: {arm} − LSTM = {d:+.1f} points ({w})")
    if "RIMs" in recs and "LSTM (raw pixel)" in recs:
        d, w = compare(recs, "RIMs", noise, base="LSTM (raw pixel)")
        out.append(
            f"- {noise}: RIMs − LSTM (raw pixel) = {d:+.1f} points ({w}). The raw-pixel LSTM sees the noise "
            "unrounded, so this row mixes the models with their input paths; the rows above compare models on "
            "the same input."
        )
    if "RIMs" in recs and "RIMs (all active)" in recs:
        d, w = compare(recs, "RIMs", noise, base="RIMs (all active)")
        out.append(f"- {noise}: RIMs (k = 4) − RIMs (all active) = {d:+.1f} points ({w}).")
    return out


def previous_section(path: Path, heading: str) -> str | None:
    """The text of section ``heading`` (from its ``## `` line to the next one) in the page at ``path``, if any."""
    if not path.is_file():
        return None
    match = re.search(rf"^## {re.escape(heading)}.*?(?=^## |\Z)", path.read_text(), flags=re.S | re.M)
    return match.group(0).rstrip() if match else None


COPY_HEADING = "Copy with a delay (Goyal et al. 2019, section 4.2)"
NOISE_HEADING = "Why RIMs lost more than the LSTM under noise, and the fix (controlled runs)"


def copy_section(copy_recs: dict[str, list[dict]], fig_dir: Path) -> str:
    trainer = load_config(COPY["RIMs"]).trainer
    return f"""## {COPY_HEADING}

5 symbols from an alphabet of 8 (chance 12.5%), a blank delay ending in a marker, then recall; scored on the
recall steps. Trained at delay 10 (T = 20): {trainer.steps} steps of batch {trainer.batch_size},
Adam {trainer.lr:g}, clip {trainer.clip_norm:g}. Tested at the last checkpoint on
{EVAL_BATCHES} x {EVAL_BATCH_SIZE} fresh sequences per delay. Every model reads the token ids through a 16-wide
embedding (as the official code). Mean ± std over seeds, %.

{results_table(copy_recs, COPY, COPY_CONDITIONS)}

{seed_table(copy_recs, COPY_CONDITIONS, shift=False)}

![validation accuracy during training]({fig_dir.name}/copy_valid_accuracy.png)

What holds here:
{chr(10).join(copy_claims(copy_recs))}

Why the learning rate is 1e-3 (a controlled run): the first version of these presets used Adam 3e-3 and
1000 steps, and there the LSTM never left the chance plateau (12.7 ± 0.2% at the trained delay over 3 seeds,
and still 12.5% after 5000 steps), so RIMs beating it said nothing about memory over longer delays. The
same LSTM, alone in plain torch (`nn.Embedding` + `nn.LSTM` + `nn.Linear` on `CopyDelayTask` batches, seed
0), stays at 2.08 nats (ln 8) for 3000 steps at 3e-3 and reaches 85.6% after 1500 steps at 1e-3, so the
plateau is the learning rate, not mnemonet's LSTM. The official copying scripts (anirudh9119/RIMs
`experiment_copying*.sh`) use 1e-3; the presets now do too, with 2000 steps:

```
mnemonet train copy_delay_lstm-small --set trainer.steps=5000 --set trainer.lr=3e-3   # 12.5% at delay 10
mnemonet train copy_delay_lstm-small                                                  # ~94% at delay 10
```"""


def noise_result(recs: dict[str, list[dict]]) -> str:
    """The noise result of the digits table (RIMs against the LSTM on the same input), from its runs."""
    if "RIMs" not in recs or "LSTM" not in recs:
        return ""
    noise, clean = DIGIT_CONDITIONS[-1][0], DIGIT_CONDITIONS[0][0]
    stats = {
        (arm, label): mean_std([100 * r["accuracy"][label] for r in recs[arm]])
        for arm in ("RIMs", "LSTM")
        for label in (clean, noise)
    }
    (rn, rn_sd), (ln, ln_sd) = stats["RIMs", noise], stats["LSTM", noise]
    rc, lc = stats["RIMs", clean][0], stats["LSTM", clean][0]
    d, w = compare(recs, "RIMs", noise)
    verdict = "within 5 points" if d >= -5 else "more than 5 points below"
    seeds = {"better": "every RIMs seed is above every LSTM seed", "worse": "every RIMs seed is below every LSTM seed"}
    return (
        f"**Result** (the table above, {len(recs['RIMs'])} seeds): RIMs {rn:.1f} ± {rn_sd:.1f} % under noise against "
        f"the LSTM's {ln:.1f} ± {ln_sd:.1f} % on the same input, {d:+.1f} points: {verdict}; "
        f"{seeds.get(w, 'the seeds overlap')}. From clean to noisy RIMs lose {rc - rn:.0f} points, the LSTM "
        f"{lc - ln:.0f}; clean, RIMs are behind too after 1000 steps ({rc:.1f} against {lc:.1f} %).\n" + NOISE_CONTROLS
    )


def noise_section(digit_recs: dict[str, list[dict]]) -> str:
    """The controlled runs of ``rims_noise.py`` that found why RIMs lost more than the LSTM under noise."""
    import rims_noise

    records = rims_noise.finished()
    if not records:
        return f"## {NOISE_HEADING}\n\n(no finished runs: `{rims_noise.COMMAND}`)"
    return f"""## {NOISE_HEADING}

{NOISE_FINDINGS}

{noise_result(digit_recs)}

Controlled runs (seed 0, and three seeds of the official init, the dropout, the k and the size arms; the preset's
trainer; scored as above); regenerate with `{rims_noise.COMMAND} "ARM" [--seeds 0 1 2]` (finished runs are
skipped; `--table` prints both tables). The ablations of
RIMs' options change one thing against `all active, linear encoder`, the earlier input path:

{rims_noise.ablation_table(records)}

Probes of the trained runs (no training; 1024 held-out digits, noise std {NOISE};
`rims_noise.probe`): noise on part of the input only, and for RIMs the input attention's weights and
values taken from different inputs:

{rims_noise.probe_table(records)}"""


# What the two controlled runs of the noise result found (their pages are written by their scripts).
NOISE_CONTROLS = """The previous version of this page, whose runs drew dropout masks with `F.dropout`, had RIMs
46.1 ± 1.9 % against 51.0 ± 1.2 % (−4.9 points, 3 seeds). Six controlled runs size the gap (numbers of their
pages when this was written):

- **Seeds and the mask draw** ([rims_dropout_draw.md](rims_dropout_draw.md), 12 seeds): RIMs − LSTM under noise
  is −8.4 points with the hashed masks and −7.5 with Bernoulli masks (`F.dropout`'s draw); seed by seed the two
  draws differ by +0.8 ± 3.5 points (Bernoulli higher on 8 of 12), no sign of an effect of the draw. The −4.9 of
  three seeds came from LSTM seeds at the low end of their spread (51.0 % for seeds 0-2, 52.9 % for all 12).
- **Training budget** ([rims_budget.md](rims_budget.md), 3 seeds): with 4000 steps instead of 1000, RIMs close most of
  the clean gap (−13.6 → −3.8 points) but not the gap under noise (−7.8 → −6.9).
- **Learning rate** ([rims_lr.md](rims_lr.md), 3 seeds per rate): Adam 1e-3, 3e-3 and 1e-2 for both models, each
  model's rate chosen on clean validation digits (the noisy test plays no part). RIMs' best is the presets'
  3e-3; the LSTM's is 1e-2, which scores 49.2 % under noise: RIMs − LSTM −6.0 points.
- **The official scripts' dropout** (`--drop 0.5`, which the scripts apply to the embedding and to the output
  before the decoder; both models, 3 seeds, the rows "encoder dropout 0.5" and "dropout 0.5 on embedding and
  readout" below): RIMs 46.0 % against 55.2 % (embedding only, −9.2 points) and 44.9 % against 53.2 % (both,
  −8.3 points).
- **Model size** (3 seeds, the rows "RIMs, modules of 32 units" and "LSTM, 198 units" below): with modules of 32
  units instead of 16, 173k parameters, against an LSTM of the same size, RIMs score 80.6 % clean and 46.8 % under
  noise, the LSTM 94.4 % and 56.3 % (−9.5 points): three times the parameters do not close the gap.
- **How many modules are active** ([rims_k.md](rims_k.md), 12 seeds per arm): RIMs − LSTM under noise is −10.4
  points with k = 3 of 6 modules, −8.4 with k = 4 (the preset), −5.8 with k = 5 and −4.8 with all 6 active.
  The gap follows the clean gap: every arm keeps 54-57 % of its clean accuracy under noise (LSTM 57 %), and the
  fewer modules are active, the less of the clean task RIMs learn in 1000 steps (clean test accuracy 74.2 /
  79.7 / 83.0 / 88.9 % for k = 3 / 4 / 5 / 6, the LSTM 92.7 %). Where the noise hurts differs: noise on the last
  two rows only costs RIMs (k = 4) 17.6 points and the LSTM 13.4, noise on the first two rows 4.6 and 6.0.

So at this scale RIMs with k < n lose 6-10 points more than the LSTM under noise std 0.3 (8.4 at the presets'
k = 4, over 12 seeds), and the issue's target of 5 points is not met. After the presets' 1000 steps the gap is
the gap on clean digits carried over: RIMs keep the same share of their clean accuracy as the LSTM, and the
gap grows as fewer modules are active. Training longer does not turn it into an advantage: after 4000 steps RIMs
keep 53 % of their clean accuracy under noise, the LSTM 58 % (rims_budget.md). It is not the mask draw, the
training budget, the learning rate, the official scripts' dropout, the model size, or (above) the encoder, the
selection, the input attention's weights or one of the official defaults. Only RIMs with every module active,
which have no selection, come within 5 points (−4.8 over 12 seeds); no k < n does at this scale."""

# The findings of the controlled runs; the numbers are those of the tables that follow it in the page.
NOISE_FINDINGS = """\
**Cause.** With the earlier input path, a 16-wide linear encoder of the grey-level pixel, RIMs lost 18
points more than the LSTM under noise (the previous version of this page, 3 seeds: RIMs 36.7 ± 4.6 %, RIMs
all active 38.0 ± 1.1 %, LSTM on the raw pixel 54.9 ± 2.9 %). The runs below separate the candidate causes:

- Not the encoder: the LSTM behind the same linear encoder keeps its accuracy under noise (61.5 % against
  56.2 % on the raw pixel).
- Not the selection: with every module active there is no selection to flip, and RIMs lose as much (42.6 %).
- Not the input attention's weights: with the weights computed from the clean input and the values from the
  noisy one, RIMs score as with both noisy (39.9 %); with noisy weights and clean values they score as clean
  (89.4 %). The noise gets in through the values, as it gets into an LSTM.
- Not one of the official defaults: no dropout 31.8 %, per-module linear communication output 34.2 %,
  dropout 0.5 on the encoder's code (as the official training scripts) 38.3 %; torch.nn's initialisation
  49.7 %, the best of them and still 6.5 points below the raw-pixel LSTM and 11.8 below the LSTM behind the
  same encoder (all one seed; seeds differ by about ±4 points).
- Where it gets in: noise on the background (zero) pixels alone costs the all-active RIMs 37 points
  (89.6 → 52.6 %) and the LSTM 17 (93.3 → 76.4 %); noise on the strokes alone costs them about the same (25
  and 22 points). Every RIMs variant shows it (34.7-62.8 % with background noise only, against 73.8-81.2 %
  for the three LSTMs reading grey levels). Trained on clean digits, where 49 % of the pixels are exactly 0,
  RIMs reading the grey level learn a response to the background that small deviations from 0 upset: the
  exact-zero pixels that made every module tie with the null input before there was an encoder. The encoder
  removed the tie, not this.

**Fix.** The official code never gives RIMs a grey level: it rounds the MNIST pixels to 0/1 and embeds them,
and its LSTM baseline reads the same embedding. With that input path for every model (`encoder: levels`,
`num_embeddings: 2`; the noise is added to the [0, 1] pixel, which is then clipped and rounded), deviations
below 0.5 reach no model. With the official initialisation RIMs then lose less under noise than the LSTM
(75.9 → 43.2 % against 91.5 → 51.0 %, 3 seeds each) but learn the clean task more slowly, and stay 7.8
points below it under noise: the official init draws the input key and value maps from N(0, 0.01²), so the
pixel's code reaches the module LSTMs at about a hundredth of its scale, and 1000 steps are not enough
(the official runs train for ~100 epochs). With torch.nn's initialisation, the LSTM's own, RIMs reached
86.0 % clean and 48.1 % under noise on seed 0 (with the `F.dropout` masks of that version), so
`rims_seq_mnist-small` (and `rims_seq_mnist_all-small`) use `init: torch`; the paper-scale `rims_seq_mnist`
keeps the official init. Rounding is no free denoiser: at std 0.3 it turns 4.8 % of the background pixels into
full stroke pixels, and the LSTM reading rounded pixels scores less under noise than the LSTM reading the raw
pixel (51.0 ± 1.2 % against 54.9 ± 2.9 %)."""


def write_doc(results: dict, path: Path, fig_dir: Path, quick: bool, total_seconds: float) -> None:
    copy_recs, digit_recs = results["copy"], results["digits"]
    shifts = [
        f"{arm} {fmt(r['shift'] for r in rs)}%"
        for arm, rs in digit_recs.items()
        if rs and rs[0].get("shift") is not None
    ]
    models = {
        f"{e}: {arm}": load_config(p).model.to_dict() for e, (arms, _) in EXPERIMENTS.items() for arm, p in arms.items()
    }
    digits = load_config(DIGITS["RIMs"]).trainer
    kept = None if copy_recs or quick else previous_section(path, COPY_HEADING)
    missing = [f"{e}: {arm}" for e, arm in PLAN if len(results[e].get(arm, [])) < len(SEEDS)]
    if kept:
        missing = [m for m in missing if not m.startswith("copy")]
    text = f"""# RIMs and BRIMs vs LSTM on the RIMs papers' own tests (CPU scale)

{"**QUICK SMOKE RUN — numbers are meaningless.**" if quick else ""}

Issue 12's evidence, regenerated with the official defaults (value size 4 x module size, dropout 0.1 on the
attention outputs, gated-tanh communication, inactive modules offering their would-be update, official init;
BRIMs with 4 input heads) and the official input path, which cannot tie with the null input (an embedding
in front of RIMs/BRIMs and of the LSTM). Three seeds per arm, one torch thread, runs one after the other.
Every RIMs and BRIMs run of the two main tables draws its dropout masks with a counter-based hash
(`kernels/rims_sequence.py: dropout_noise`, docs/rims_differences.md). Older runs of the controlled-run tables
(the all-active ablations through a linear encoder and "RIMs, official init") drew them with `F.dropout`: the
same distribution, other masks for a seed, so a rerun gives other numbers for that seed.

Regenerate (≈{total_seconds / 60:.0f} min of training and testing{" the digits" if kept else ""} on this machine;
finished runs are skipped; `--report` rewrites this page from finished runs only; `--only digits` trains
and tests one experiment and keeps the other's section of this page when its runs are not on disk):

```
{REGENERATE}
```

{kept or (copy_section(copy_recs, fig_dir) if copy_recs else f"## {COPY_HEADING}{chr(10)}{chr(10)}(no finished runs)")}

## Sequential 8x8 digits: length generalisation and noise (section 4.1 at CPU scale)

scikit-learn's 8x8 digits, one pixel per step (T = 64), scored on the class at the last step;
{digits.steps} steps of batch {digits.batch_size}, Adam {digits.lr:g}, clip {digits.clip_norm:g}. Tested at the
last checkpoint on {EVAL_BATCHES} x {EVAL_BATCH_SIZE} draws (with replacement) from the 180 held-out digits:
at 8x8, upsampled with nearest neighbours to 9/10/11 px (T = 81/100/121, 1.27x-1.89x the trained length, the
paper's factors 16/19/24 over 14 are 1.31x-2.94x), and at 8x8 with Gaussian noise of std {NOISE} added to
the pixels (which lie in [0, 1]).

Input path: LSTM, RIMs and BRIMs read each pixel as the official RIMs code reads MNIST, rounded to 0 or 1
and embedded (16 wide; `encoder: levels`, `num_embeddings: 2`). The noise test is the same for every
model: noise is added to the [0, 1] pixel, and a model that rounds its input clips the noisy value to
[0, 1] and rounds it like a clean one (so rounding also removes noise below 0.5: a background pixel
flips with probability 4.8% at std 0.3). `LSTM (raw pixel)` is the baseline of the earlier version of this
page: the grey-level pixel, noise included, straight into the LSTM. Mean ± std over seeds, %; chance 10%.

{results_table(digit_recs, DIGITS, DIGIT_CONDITIONS) if digit_recs else "(no finished runs)"}

{seed_table(digit_recs, DIGIT_CONDITIONS, shift=True) if digit_recs else ""}

![validation accuracy during training (8x8)]({fig_dir.name}/digits_valid_accuracy.png)

Active set under noise: on the same 128 held-out digits run clean and with noise std {NOISE}, the share of
steps at which the set of active modules differs is {", ".join(shifts) or "(no runs)"}.

What holds here:
{chr(10).join(digit_claims(digit_recs)) or "- Not enough finished runs."}

{"" if quick else noise_section(digit_recs)}

## Setup and limits

- Machine: 2-core CPU shared with other agents' jobs (1-minute load average {os.getloadavg()[0]:.1f} when
  this page was written), torch {torch.__version__}, Python {platform.python_version()}; wall times are
  inflated and uneven, compare them only as ratios.
- CPU scale, not the papers' scale: tens of thousands of parameters, {load_config(COPY["RIMs"]).trainer.steps} /
  {digits.steps} training steps, one learning rate for every model (on the digits, each model's own rate chosen
  on validation digits changes the noise result by under 2 points: [rims_lr.md](rims_lr.md)). The paper-scale
  presets (`copy_delay_rims`, `copy_delay_rims_all`, `copy_delay_lstm`: 10 symbols, delay 50 -> 200, 6 x 100
  units; `rims_seq_mnist`, `rims_seq_mnist_all`, `rims_seq_mnist_lstm`, `brims_seq_mnist`: MNIST 14 -> 16 /
  19 / 24 px from a local path) were not run.
- Runs missing from the tables (not finished by the deadline): {", ".join(missing) or "none"}.
- Models (readout to the classes not shown):
{chr(10).join(f"  - {k}: `{json.dumps(v)}`" for k, v in models.items())}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, re.sub(r"\n{3,}", "\n\n", text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run (runs/.../rims-quick)")
    parser.add_argument("--report", action="store_true", help="write the page from finished runs; train nothing")
    parser.add_argument("--only", choices=sorted(EXPERIMENTS), help="train only this experiment (the page keeps the "
                        "other one's finished runs)")  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(1)
    root, doc, fig_dir = report_paths("rims", args.quick)
    overrides = QUICK if args.quick else []
    batches, batch_size = (1, 16) if args.quick else (EVAL_BATCHES, EVAL_BATCH_SIZE)
    results: dict[str, dict[str, list[dict]]] = {"copy": {}, "digits": {}}
    dirs: dict[str, dict[str, list[str]]] = {"copy": {}, "digits": {}}
    total = 0.0
    for experiment, arm in PLAN:
        arms, conditions = EXPERIMENTS[experiment]
        for seed in SEEDS:
            name = slug(experiment, arm)
            report_only = args.report or (args.only is not None and experiment != args.only)
            if report_only and not (root / f"{name}-s{seed}" / "done.json").is_file():
                continue
            record = run_arm(arms[arm], name, seed, root, overrides)
            ev = evaluate_conditions(record["run"], conditions, batches, batch_size)
            shift = selection_shift(record["run"]) if experiment == "digits" else None
            results[experiment].setdefault(arm, []).append({**record, **ev, "shift": shift, "seed": seed})
            dirs[experiment].setdefault(arm, []).append(record["run"])
            total += record["seconds"] + ev["eval_seconds"]
            accs = ", ".join(f"{k} {100 * v:.1f}" for k, v in ev["accuracy"].items())
            print(f"{experiment} {arm} seed {seed}: {record['seconds']:.0f} s; {accs}", flush=True)
    for experiment, label in (("copy", "validation accuracy (delay 10)"), ("digits", "validation accuracy (8x8)")):
        if dirs[experiment]:
            plot_curves(dirs[experiment], "valid_accuracy", fig_dir / f"{experiment}_valid_accuracy.png", ylabel=label)
    write_doc(results, doc, fig_dir, args.quick, total)
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()
