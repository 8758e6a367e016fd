"""Why RIMs lose more than an LSTM under input noise on sequential 8x8 digits: single-seed controlled runs.

Each arm is a digits preset of ``experiments/rims.py`` with config overrides (one change at a time), trained
with the preset's trainer (1000 steps) and scored exactly as ``rims.py`` scores the digits: held-out digits at
8x8, clean and with Gaussian noise of std 0.3, plus the share of steps whose active set of modules changes
under noise. Runs share ``runs/experiments/rims/`` with ``rims.py`` (the baseline arms are the same runs).

Run with ``PYTHONPATH=src:experiments .venv/bin/python experiments/rims_noise.py [ARM ...] [--seeds 0 1 2]``
(no arm: every arm, in the order of ``ABLATIONS``); ``--table`` prints the Markdown table of finished runs.
"""

from __future__ import annotations

import argparse

import torch

from common import markdown_table, run_arm
from rims import DIGIT_CONDITIONS, DIGITS, EVAL_BATCH_SIZE, EVAL_BATCHES, evaluate_conditions, selection_shift, slug
from mnemonet.app.run import read_run_config

ROOT = "runs/experiments/rims"
CLEAN, NOISY = DIGIT_CONDITIONS[0], DIGIT_CONDITIONS[-1]
# arm name -> (preset, overrides): one change at a time against a baseline arm of rims.py
ABLATIONS: dict[str, tuple[str, list[str]]] = {
    "LSTM": (DIGITS["LSTM"], []),
    "RIMs (all active)": (DIGITS["RIMs (all active)"], []),
    "RIMs": (DIGITS["RIMs"], []),
    "LSTM + linear encoder": (DIGITS["LSTM"], ["model.encoder=linear", "model.encoder_size=16"]),
    "all active, init torch": (DIGITS["RIMs (all active)"], ["model.init=torch"]),
    "all active, dropout 0": (DIGITS["RIMs (all active)"], ["model.dropout=0.0"]),
    "all active, linear comm": (DIGITS["RIMs (all active)"], ["model.comm_output=linear"]),
    "all active, encoder dropout 0.5": (DIGITS["RIMs (all active)"], ["model.encoder_dropout=0.5"]),
    "LSTM + linear encoder, dropout 0.5": (
        DIGITS["LSTM"], ["model.encoder=linear", "model.encoder_size=16", "model.encoder_dropout=0.5"]
    ),
    "all active, 2-level embedding": (DIGITS["RIMs (all active)"], ["model.encoder=levels", "model.num_embeddings=2"]),
    "LSTM + 2-level embedding": (DIGITS["LSTM"], ["model.encoder=levels", "model.num_embeddings=2", "model.encoder_size=16"]),
    "RIMs, 2-level embedding": (DIGITS["RIMs"], ["model.encoder=levels", "model.num_embeddings=2"]),
}


def arm_slug(arm: str) -> str:
    """The run folder of an arm: rims.py's own for its arms, ``digits-ablation-...`` for the others."""
    return slug("digits", arm if arm in DIGITS else f"ablation {arm}")


def run(arm: str, seed: int) -> dict:
    """Train (unless done) and score one arm; prints and returns the record."""
    preset, overrides = ABLATIONS[arm]
    record = run_arm(preset, arm_slug(arm), seed, torch_root(), overrides)
    ev = evaluate_conditions(record["run"], (CLEAN, NOISY), EVAL_BATCHES, EVAL_BATCH_SIZE)
    shift = selection_shift(record["run"])
    out = {"arm": arm, "seed": seed, **record, **ev, "shift": shift}
    acc = ev["accuracy"]
    print(
        f"{arm} s{seed}: {record['seconds']:.0f} s; clean {100 * acc[CLEAN[0]]:.1f}, noise {100 * acc[NOISY[0]]:.1f}"
        + ("" if shift is None else f", active set changed {100 * shift:.1f}%"),
        flush=True,
    )
    return out


def torch_root():
    from pathlib import Path

    return Path(ROOT)


def table(records: list[dict]) -> str:
    rows = []
    for r in records:
        preset, overrides = ABLATIONS[r["arm"]]
        acc = r["accuracy"]
        cfg = read_run_config(r["run"]).model.to_dict()
        rows.append([
            r["arm"], r["seed"], f"`{preset}`" + "".join(f" `{o}`" for o in overrides), f"{r['params']:,}",
            f"{100 * acc[CLEAN[0]]:.1f}", f"{100 * acc[NOISY[0]]:.1f}",
            "–" if r["shift"] is None else f"{100 * r['shift']:.1f}", f"{r['seconds']:.0f}",
        ])  # fmt: skip
        del cfg
    headers = ["arm", "seed", "preset and overrides", "params", "8x8 clean", "8x8 + noise 0.3",
               "active set changed (%)", "train s"]  # fmt: skip
    return markdown_table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arms", nargs="*", help="arms to run (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--table", action="store_true", help="print the table of the given (finished) arms")
    args = parser.parse_args()
    torch.set_num_threads(1)
    arms = args.arms or list(ABLATIONS)
    records = []
    for arm in arms:
        for seed in args.seeds:
            if args.table and not (torch_root() / f"{arm_slug(arm)}-s{seed}" / "done.json").is_file():
                continue
            records.append(run(arm, seed))
    if args.table:
        print(table(records))


if __name__ == "__main__":
    main()


# ---------------------------------------------------------------------------------------------------------
# Probes of a trained run (no training): where the noise gets in.
# ---------------------------------------------------------------------------------------------------------


def probe(run_dir: str, num: int = 1024, noise: float = 0.3) -> dict[str, float]:
    """Accuracy of a trained digits run under noise with one path of the input kept clean.

    For RIMs (behind an encoder): ``clean_attention``: the input attention's weights from the clean input,
    the values from the noisy one; ``clean_values``: the reverse. For every model: ``noisy_clipped``: the
    noisy pixels clipped to [0, 1]. Also the mean absolute change of the attention on the input under noise.
    """
    from mnemonet.app import load_run
    from mnemonet.models.encoder import Encoded

    run = load_run(run_dir, "last")
    model = run.model.eval()
    gen = torch.Generator().manual_seed(1)
    batch = run.task.sample_at_resolution(num, gen, 8, "test", 0.0)
    clean = batch.x  # (B, 64, 1)
    noisy = clean + noise * torch.randn(clean.shape, generator=gen)
    labels = batch.info["labels"]

    def acc(logits):
        return float((logits[:, -1].argmax(-1) == labels).float().mean())

    out = {}
    with torch.no_grad():
        out["clean"] = acc(model(clean)[0])
        out["noisy"] = acc(model(noisy)[0])
        out["noisy_clipped"] = acc(model(noisy.clamp(0, 1))[0])
        out["noise_on_background"] = acc(model(torch.where(clean == 0, noisy, clean))[0])
        out["noise_on_strokes"] = acc(model(torch.where(clean != 0, noisy, clean))[0])
        core = model.core
        if isinstance(core, Encoded) and hasattr(core.core, "cell") and hasattr(core.core.cell, "project_inputs"):
            cell = core.core.cell
            kc, vc = cell.project_inputs(core.encoder(clean))  # (B, T, H, d)
            kn, vn = cell.project_inputs(core.encoder(noisy))

            def unroll(keys, values):
                state = cell.initial_state(clean.shape[0])
                probs = []
                for t in range(clean.shape[1]):
                    step, state = cell.step_projected(keys[:, t : t + 1], values[:, t : t + 1], state)
                    probs.append(1 - step.null_attention)
                return model.readout(step.y)[:, None], torch.stack(probs, 1)  # (B, 1, C), (B, T, n)

            logits, p_clean = unroll(kc, vc)
            out["check_clean"] = acc(logits)
            logits, p_noisy = unroll(kn, vn)
            out["check_noisy"] = acc(logits)
            out["clean_attention"] = acc(unroll(kc, vn)[0])
            out["clean_values"] = acc(unroll(kn, vc)[0])
            out["attention_change"] = float((p_noisy - p_clean).abs().mean())
            out["attention_saturated"] = float(((p_clean < 0.05) | (p_clean > 0.95)).float().mean())
            out["attention_mean"] = float(p_clean.mean())
    return out
