"""Why RIMs lost more than an LSTM under input noise on sequential 8x8 digits: single-seed controlled runs.

Each arm is a digits preset with config overrides (one change at a time), trained with the preset's trainer
(1000 steps, seed 0) and scored exactly as ``experiments/rims.py`` scores the digits: held-out digits at 8x8,
clean and with Gaussian noise of std 0.3 on the [0, 1] pixel (models that round the pixel clip and round
the noisy value), plus the share of steps whose active set of modules changes under noise. Runs share
``runs/experiments/rims/`` with ``rims.py`` (its arms are the same runs). The ablations of RIMs' own
options start from the earlier input path, a 16-wide linear encoder of the grey-level pixel
(``model.encoder=linear``), where the drop appeared.

:func:`probe` then looks inside a trained run: accuracy with noise on the background (zero) pixels only or
on the strokes only, with the input attention's weights or its values taken from the clean input;
:func:`position_probe` puts the noise on the steps of one span of the image's rows only.

Run with ``PYTHONPATH=src:experiments .venv/bin/python experiments/rims_noise.py [ARM ...] [--seeds 0 1 2]``
(no arm: every arm, in the order of ``ABLATIONS``); ``--table`` prints the Markdown tables of finished runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from common import cached, markdown_table, run_arm
from mnemonet.app import load_run
from mnemonet.models.encoder import Encoded
from rims import (
    DIGIT_CONDITIONS,
    DIGITS,
    EVAL_BATCH_SIZE,
    EVAL_BATCHES,
    NOISE,
    ROOT,
    evaluate_conditions,
    selection_shift,
    slug,
)

CLEAN, NOISY = DIGIT_CONDITIONS[0], DIGIT_CONDITIONS[-1]
COMMAND = "PYTHONPATH=src:experiments .venv/bin/python experiments/rims_noise.py"
LINEAR = ["model.encoder=linear"]  # the earlier input path of the RIMs presets (16 wide, as encoder_size)
ALL = DIGITS["RIMs (all active)"]
RAW_LSTM = DIGITS["LSTM (raw pixel)"]
# the official scripts' --drop 0.5: nn.Dropout on the embedding and on the output before the decoder
DROP_BOTH = ["model.encoder_dropout=0.5", "model.readout_dropout=0.5"]
# arm name -> (preset, overrides); the arms of rims.py run under their own name
ABLATIONS: dict[str, tuple[str, list[str]]] = {
    "LSTM (raw pixel)": (RAW_LSTM, []),
    "LSTM + linear encoder": (RAW_LSTM, ["model.encoder=linear", "model.encoder_size=16"]),
    "LSTM + linear encoder, dropout 0.5": (
        RAW_LSTM, ["model.encoder=linear", "model.encoder_size=16", "model.encoder_dropout=0.5"]
    ),
    "all active, linear encoder": (ALL, LINEAR),
    "all active, init torch": (ALL, [*LINEAR, "model.init=torch"]),
    "all active, dropout 0": (ALL, [*LINEAR, "model.dropout=0.0"]),
    "all active, linear comm": (ALL, [*LINEAR, "model.comm_output=linear"]),
    "all active, encoder dropout 0.5": (ALL, [*LINEAR, "model.encoder_dropout=0.5"]),
    "LSTM": (DIGITS["LSTM"], []),
    "RIMs (all active)": (ALL, []),
    "RIMs": (DIGITS["RIMs"], []),
    "RIMs, official init": (DIGITS["RIMs"], ["model.init=official"]),
    "LSTM, encoder dropout 0.5": (DIGITS["LSTM"], ["model.encoder_dropout=0.5"]),
    "RIMs, encoder dropout 0.5": (DIGITS["RIMs"], ["model.encoder_dropout=0.5"]),
    "LSTM, dropout 0.5 on embedding and readout": (DIGITS["LSTM"], DROP_BOTH),
    "RIMs, dropout 0.5 on embedding and readout": (DIGITS["RIMs"], DROP_BOTH),
    "RIMs, k = 3": (DIGITS["RIMs"], ["model.k=3"]),
    "RIMs, k = 5": (DIGITS["RIMs"], ["model.k=5"]),
    "LSTM, 198 units": (DIGITS["LSTM"], ["model.hidden_size=198"]),  # the parameters of RIMs of 6 x 32 units
    "RIMs, modules of 32 units": (DIGITS["RIMs"], ["model.module_size=32"]),
}  # fmt: skip


# arms shown with more than seed 0
SEEDS: dict[str, tuple[int, ...]] = {
    "RIMs, official init": (0, 1, 2),
    "LSTM, encoder dropout 0.5": (0, 1, 2),
    "RIMs, encoder dropout 0.5": (0, 1, 2),
    "LSTM, dropout 0.5 on embedding and readout": (0, 1, 2),
    "RIMs, dropout 0.5 on embedding and readout": (0, 1, 2),
    "RIMs, k = 3": (0, 1, 2),
    "RIMs, k = 5": (0, 1, 2),
    "LSTM, 198 units": (0, 1, 2),
    "RIMs, modules of 32 units": (0, 1, 2),
}


def arm_slug(arm: str) -> str:
    """The run folder of an arm: rims.py's own for its arms, ``digits-ablation-...`` for the others."""
    return slug("digits", arm if arm in DIGITS else f"ablation {arm}")


def is_done(arm: str, seed: int = 0) -> bool:
    return (ROOT / f"{arm_slug(arm)}-s{seed}" / "done.json").is_file()


def run(arm: str, seed: int = 0) -> dict:
    """Train (unless done) and score one arm; prints and returns the record."""
    preset, overrides = ABLATIONS[arm]
    record = run_arm(preset, arm_slug(arm), seed, ROOT, overrides)
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


def probe_draw(run_dir: str | Path, num: int):
    """A run's model (eval mode) and ``num`` seeded held-out 8x8 digits, clean and with noise of std ``NOISE``.

    Returns:
        (model, clean `[B, 64, 1]`, noisy `[B, 64, 1]`, labels `[B]`); the same digits and noise for every run.
    """
    run_ = load_run(run_dir, "last")
    gen = torch.Generator().manual_seed(1)
    batch = run_.task.sample_at_resolution(num, gen, 8, "test", 0.0)
    clean = batch.x  # (B, 64, 1)
    noisy = clean + NOISE * torch.randn(clean.shape, generator=gen)  # (B, 64, 1)
    return run_.model.eval(), clean, noisy, batch.info["labels"]


def probe(run_dir: str | Path, num: int = 1024) -> dict[str, float]:
    """Accuracy of a trained digits run under noise of std ``NOISE`` with one path of the input kept clean.

    On ``num`` held-out 8x8 digits (seeded draws): ``clean``, ``noisy``; ``noise_on_background``: noise on
    the zero pixels only; ``noise_on_strokes``: on the others only. For RIMs: ``clean_attention``: the
    input attention's weights computed from the clean input, its values from the noisy one;
    ``clean_values``: the reverse; ``attention_change``: mean absolute change of the attention on the
    input. Cached in ``probe.json``.
    """

    def compute() -> dict[str, float]:
        model, clean, noisy, labels = probe_draw(run_dir, num)

        def acc(logits: torch.Tensor) -> float:
            return float((logits[:, -1].argmax(-1) == labels).float().mean())

        out = {}
        with torch.no_grad():
            out["clean"] = acc(model(clean)[0])
            out["noisy"] = acc(model(noisy)[0])
            out["noise_on_background"] = acc(model(torch.where(clean == 0, noisy, clean))[0])
            out["noise_on_strokes"] = acc(model(torch.where(clean != 0, noisy, clean))[0])
            core = model.core
            if not (isinstance(core, Encoded) and hasattr(getattr(core.core, "cell", None), "project_inputs")):
                return out
            cell = core.core.cell  # a RIMs cell behind an encoder
            kc, vc = cell.project_inputs(core.encoder(clean))  # (B, T, H, d)
            kn, vn = cell.project_inputs(core.encoder(noisy))

            def unroll(keys, values):
                state, p_input = cell.initial_state(clean.shape[0]), []
                for t in range(clean.shape[1]):
                    step, state = cell.step_projected(keys[:, t : t + 1], values[:, t : t + 1], state)
                    p_input.append(1 - step.null_attention)
                return model.readout(step.y)[:, None], torch.stack(p_input, 1)  # (B, 1, C), (B, T, n)

            _, p_clean = unroll(kc, vc)
            logits, p_noisy = unroll(kn, vn)
            assert abs(acc(logits) - out["noisy"]) < 1e-9  # the unrolled step is the model's
            out["clean_attention"] = acc(unroll(kc, vn)[0])
            out["clean_values"] = acc(unroll(kn, vc)[0])
            out["attention_change"] = float((p_noisy - p_clean).abs().mean())
        return out

    return cached(Path(run_dir) / "probe.json", {"images": num, "noise": NOISE, "seed": 1}, compute)


POSITIONS = ((0, 16), (16, 32), (32, 48), (48, 64), (56, 64))  # steps (rows 1-2, 3-4, 5-6, 7-8, 8) of the 8x8 image


def position_probe(run_dir: str | Path, num: int = 1024) -> dict[str, float]:
    """Accuracy of a trained digits run with noise of std ``NOISE`` on the steps of one span of rows only.

    On ``num`` held-out 8x8 digits (the draws of :func:`probe`): ``clean``, ``noisy`` (every step) and, for
    each ``(lo, hi)`` of ``POSITIONS``, ``"lo-hi"``: noise on steps lo <= t < hi only. Cached in
    ``positions.json``.
    """

    def compute() -> dict[str, float]:
        model, clean, noisy, labels = probe_draw(run_dir, num)
        t = torch.arange(clean.shape[1])[None, :, None]  # (1, 64, 1)

        def acc(x: torch.Tensor) -> float:
            with torch.no_grad():
                return float((model(x)[0][:, -1].argmax(-1) == labels).float().mean())

        out = {"clean": acc(clean), "noisy": acc(noisy)}
        for lo, hi in POSITIONS:
            out[f"{lo}-{hi}"] = acc(torch.where((t >= lo) & (t < hi), noisy, clean))
        return out

    return cached(Path(run_dir) / "positions.json", {"images": num, "noise": NOISE, "seed": 1}, compute)


def position_table(folders: dict[str, str], seeds: tuple[int, ...] = (0, 1, 2)) -> str:
    """Mean over ``seeds`` of :func:`position_probe`: clean accuracy (%) and the points lost with the noise on
    every step or on one span of rows only, one row per ``label: run folder name`` of ``folders``."""
    spans = [f"{lo}-{hi}" for lo, hi in POSITIONS]
    rows = []
    for label, name in folders.items():
        ps = [position_probe(ROOT / f"{name}-s{seed}") for seed in seeds]
        m = {k: 100 * sum(p[k] for p in ps) / len(ps) for k in ps[0]}
        rows.append([label, f"{m['clean']:.1f}", *(f"{m[k] - m['clean']:+.1f}" for k in ["noisy", *spans])])
    headers = ["arm", "clean", "noise on every step", *(f"noise on steps {lo}-{hi - 1} only" for lo, hi in POSITIONS)]
    return markdown_table(headers, rows)


def ablation_table(records: list[dict]) -> str:
    """One row per finished run: the change, parameters, accuracy clean / noisy, active-set changes."""
    rows = []
    for r in records:
        preset, overrides = ABLATIONS[r["arm"]]
        acc = r["accuracy"]
        rows.append([
            r["arm"], r["seed"], f"`{preset}`" + "".join(f" `{o}`" for o in overrides), f"{r['params']:,}",
            f"{100 * acc[CLEAN[0]]:.1f}", f"{100 * acc[NOISY[0]]:.1f}",
            "–" if r["shift"] is None else f"{100 * r['shift']:.1f}", f"{r['seconds']:.0f}",
        ])  # fmt: skip
    headers = ["arm", "seed", "preset and overrides", "params", "8x8 clean", f"8x8 + noise {NOISE}",
               "active set changed (%)", "train s"]  # fmt: skip
    return markdown_table(headers, rows)


def probe_table(records: list[dict]) -> str:
    """One row per finished run: :func:`probe`'s accuracies, %."""
    keys = ["clean", "noisy", "noise_on_background", "noise_on_strokes", "clean_attention", "clean_values"]
    rows = []
    for r in records:
        p = probe(r["run"])
        rows.append([r["arm"], r["seed"], *(f"{100 * p[k]:.1f}" if k in p else "–" for k in keys)])
    headers = ["arm", "seed", "clean", "noise everywhere", "noise on background (zero) pixels only",
               "noise on strokes only", "attention weights clean, values noisy",
               "attention weights noisy, values clean"]  # fmt: skip
    return markdown_table(headers, rows)


def finished(arms=None, seeds=None) -> list[dict]:
    """Records of the finished runs among ``arms`` (default: all) and ``seeds`` (default: seed 0, and every
    seed of the arms in ``SEEDS``), scoring any not yet scored."""
    return [
        run(a, s) for a in (arms or ABLATIONS) for s in (seeds or SEEDS.get(a, (0,))) if is_done(a, s)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("arms", nargs="*", help="arms to run (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: 0 (with --table: as the page)")
    parser.add_argument("--table", action="store_true", help="print the tables of finished runs; train nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.table:
        records = finished(args.arms or None, args.seeds)
        positions = position_table({arm: arm_slug(arm) for arm in ("LSTM", "RIMs", "RIMs (all active)")})
        print(ablation_table(records), probe_table(records), positions, sep="\n\n")
        return
    for arm in args.arms or ABLATIONS:
        for seed in args.seeds or [0]:
            run(arm, seed)


if __name__ == "__main__":
    main()
