"""Evidence for issue 11: the delayed-recall arms of ``memory.py`` (both curriculum schedules) looked at with the
fixed slow-point finder, forward attractors and slow points over training; writes ``docs/results/memory.md``.

Reads the runs that ``experiments/memory.py --train-only`` trained (5 arms x seeds, a checkpoint kept every 250
steps), evaluates each from its last checkpoint (accuracy vs delay, the spread of accuracy at delay 100 over the
last checkpoints, slow points and their stop reasons, attractors, per-class speed vs accuracy) and follows each
class's slow point over the kept checkpoints of seed 0. Every evaluation is cached next to its run.

    PYTHONPATH=src:experiments .venv/bin/python experiments/memory.py --train-only
    PYTHONPATH=src:experiments .venv/bin/python experiments/memory_evidence.py
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from common import cached, markdown_table, mean_std
from memory import ARMS, KEEP_EVERY, full_task, settings
from mnemonet.analysis import answer_offset, per_class_accuracy, run_trajectories, speed_vs_accuracy
from mnemonet.analysis.over_training import class_speeds_over_training, drop_when_classes_added, plot_over_training
from mnemonet.analysis.slow_points import find_attractors, find_slow_points
from mnemonet.analysis.speed import class_slow_points
from mnemonet.app import load_run
from mnemonet.training.checkpoint import list_checkpoints

DELAYS = (5, 10, 19, 40, 60, 100, 200)
TRIALS = 500  # test trials per delay and model
LONG = 100  # the long delay of the paper's comparisons
LAST = 5  # checkpoints at the end of training for the within-run spread
SLOW_TRIALS = 300  # trials whose end-of-delay states seed the searches
SLOW_STEPS = 1000  # Adam steps of each slow-point search
ATTRACTOR_STEPS = 300
EVAL_SEED, SLOW_SEED = 20_190_607, 7


def _model_task(run_dir: Path, checkpoint: str | Path = "last") -> tuple[Any, Any]:
    run = load_run(run_dir, str(checkpoint))
    return run.model.eval(), full_task(run.task)


@torch.no_grad()
def accuracy(model: Any, task: Any, delays: Sequence[int], n: int = TRIALS) -> dict[str, dict[str, Any]]:
    """``{delay: {"accuracy", "per_class"}}`` on the same test trials for every model."""
    g = torch.Generator().manual_seed(EVAL_SEED)
    out = {}
    for d in delays:
        b = task.sample_at_delay(n, int(d), g, split="test")
        logits, _ = model(b.x)
        rows = torch.arange(n)
        pred = logits[rows, b.info["ta"]].argmax(-1) - answer_offset(b)
        y = b.info["labels"]
        out[str(d)] = {"accuracy": float((pred == y).double().mean()),
                       "per_class": per_class_accuracy(pred, y, task.max_classes).tolist()}  # fmt: skip
    return out


def dynamics(model: Any, task: Any) -> dict[str, Any]:
    """Slow points (global and per class), their stop reasons and stability, and the forward attractors."""
    g = torch.Generator().manual_seed(SLOW_SEED)
    b = task.sample(SLOW_TRIALS, g, "test")
    traj = run_trajectories(model, b.x, labels=b.info["labels"], ts=b.info["ts"], ta=b.info["ta"],
                            answer_offset=answer_offset(b))  # fmt: skip
    x = torch.full((model.input_size,), float(task.noise_mean))
    x[task.image_size] = 0.0  # the paper's constant input: noise mean, trigger off
    ends = traj.end_of_delay()
    t0 = time.perf_counter()
    starts = ends[torch.randperm(ends.shape[0], generator=g)[:64]] + 0.01 * torch.randn(64, ends.shape[1], generator=g)
    pts = find_slow_points(model, x, starts, max_steps=SLOW_STEPS)
    inside = pts[pts.in_bounds]
    per = class_slow_points(model, x, ends, traj.labels, per_class=8, noise=0.01, generator=g,
                            compute_jacobians=False, max_steps=SLOW_STEPS)  # fmt: skip
    att = find_attractors(model, x, ends, ATTRACTOR_STEPS)
    share = att.basin_share(traj.labels, task.max_classes)
    speeds = [math.nan] * task.max_classes
    for c, q in zip(per.labels.tolist(), per.speeds.tolist(), strict=True):
        speeds[c] = q
    return {
        "counts": pts.counts(),
        "distinct": len(pts),
        "stability_in_bounds": inside.stability() if len(inside) else [],
        "class_speeds": speeds,
        "class_reasons": dict(zip(per.labels.tolist(), per.reasons, strict=True)),
        "attractors": [
            {
                "speed": float(att.points.speeds[a]),
                "reason": att.points.reasons[a],
                "stability": att.points.stability()[a],
                "rho": float(att.points.eigenvalues[a].abs().max()),
                "classes": [c for c in range(task.max_classes) if share[a, c] > 0.5],
            }
            for a in range(len(att.points))
        ],
        "unsettled": int((att.basin < 0).sum()),
        "seconds": time.perf_counter() - t0,
    }


def evaluate(run_dir: Path) -> dict[str, Any]:
    model, task = _model_task(run_dir)
    acc = cached(run_dir / "eval_accuracy.json", {"delays": DELAYS, "n": TRIALS, "seed": EVAL_SEED},
                 lambda: accuracy(model, task, DELAYS))  # fmt: skip
    last = list_checkpoints(run_dir / "checkpoints")[-LAST:]

    def spread() -> dict[str, float]:
        out = {}
        for ck in last:
            m, t = _model_task(run_dir, ck)
            out[ck.stem] = accuracy(m, t, (LONG,))[str(LONG)]["accuracy"]
        return out

    within = cached(run_dir / "eval_last_checkpoints.json", {"last": LAST, "n": TRIALS}, spread)
    dyn = cached(run_dir / "eval_dynamics.json", {"steps": SLOW_STEPS, "trials": SLOW_TRIALS, "v": 2},
                 lambda: dynamics(model, task))  # fmt: skip
    return {"run": str(run_dir), "accuracy": acc, "within": within, "dynamics": dyn}


def over_training(run_dir: Path, delay: int = 40) -> list[dict[str, Any]]:
    """Per kept checkpoint: the step, the curriculum stage, each class's slow-point speed and its accuracy."""

    def checkpoints():
        for ck in list_checkpoints(run_dir / "checkpoints"):
            run = load_run(run_dir, str(ck))
            yield int(ck.stem.split("_")[1]), run.model, run.task

    return cached(run_dir / "eval_over_training.json", {"delay": delay, "v": 1},
                  lambda: class_speeds_over_training(checkpoints(), delay, SLOW_TRIALS, seed=SLOW_SEED))  # fmt: skip


def _fmt_pct(values: Sequence[float]) -> str:
    m, s = mean_std([100 * v for v in values])
    return f"{m:.1f} ± {s:.1f}"


def plot_accuracy(results: dict[str, list[dict]], path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for arm, recs in results.items():
        v = torch.tensor([[r["accuracy"][str(d)]["accuracy"] for d in DELAYS] for r in recs], dtype=torch.float64)
        m, s = 100 * v.mean(0), 100 * (v.std(0) if len(recs) > 1 else torch.zeros(len(DELAYS)))
        ax.plot(DELAYS, m, marker="o", label=f"{arm} (n={len(recs)})")
        ax.fill_between(DELAYS, m - s, m + s, alpha=0.15)
    ax.axvline(19, color="0.5", ls="--", lw=0.8, label="longest trained delay")
    ax.axhline(10, color="0.5", ls=":", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("delay between image and trigger (steps)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7, frameon=False)
    fig.savefig(path, dpi=150)
    fig.savefig(path.with_suffix(".pdf"))
    fig.savefig(path.with_suffix(".svg"))
    return path


HAND_WRITTEN = "## Which of the paper's claims hold here"


def kept_hand_written(doc: Path) -> str:
    """The hand-written part of an existing ``doc`` (from ``HAND_WRITTEN`` on), kept when tables are regenerated."""
    if doc.is_file() and HAND_WRITTEN in doc.read_text():
        return doc.read_text().split(HAND_WRITTEN, 1)[1].strip()
    return "(to be written from the tables above)"


def write_doc(results: dict[str, list[dict]], over: dict[str, list[dict]], seconds: float, doc: Path) -> Path:
    figs = doc.parent / "memory"
    figs.mkdir(parents=True, exist_ok=True)
    plot_accuracy(results, figs / "accuracy_vs_delay.png")
    plot_over_training(over, figs / "slow_points_over_training.png")
    n = len(next(iter(results.values())))
    lines = [
        "# Memory in delayed recall: Haviv, Rivkind & Barak (ICML 2019) at CPU scale (issues 7 and 11)",
        "",
        "Regenerate (runs cached under `runs/experiments/memory`, evaluations cached next to each run):",
        "",
        "```",
        "PYTHONPATH=src:experiments .venv/bin/python experiments/memory.py --train-only",
        "PYTHONPATH=src:experiments .venv/bin/python experiments/memory_evidence.py",
        "```",
        "",
        "**Setup.** Delayed recall of scikit-learn's 8x8 digits (the paper: MNIST), Tmax = 20, trained delays 5 … 19;"
        " GRU with 100 units (the paper: 200); batch 64, Adam **3e-3 constant** (no decay), clip 1, **3000 steps**"
        f" (the paper: 140k at 1e-5), {n} seeds per arm, one torch thread per run. The answer step's loss weight"
        " is Tmax − 1 = 19 against 1 for each null step, as in the authors' code. Five arms differing only in the"
        " curriculum: DeCu and VoCu with the **threshold rule** (next stage after a validation evaluation at ≥ 90 %,"
        " every 100 steps), DeCu and VoCu on the **authors' fixed schedules** scaled to 3000 steps (DeCu: window 6"
        " for 1/7 of training, +2 every 1/14 until 20 at 4/7; VoCu: 2 digits, one more at 8, 16, 26, 36, 48, 62,"
        " 78, 98 of every 140 steps), and none. Presets `delayed_recall_gru-small`,"
        " `delayed_recall_gru_decu_schedule-small`, `delayed_recall_gru_vocu-small`,"
        " `delayed_recall_gru_vocu_schedule-small`, `delayed_recall_gru_nocu-small`; a checkpoint kept every"
        f" {KEEP_EVERY} steps (`trainer.checkpoint_every={KEEP_EVERY}`, `trainer.keep_checkpoints=13`). Every model"
        f" is evaluated with all 10 digits and the full window on the same {TRIALS} test trials per delay.",
        "",
        f"**Machine.** A shared 2-core CPU under heavy load from other jobs (load average ≈ 8), torch"
        f" {torch.__version__}, Python {platform.python_version()}. Evaluation (this script, all arms): "
        f"{seconds / 60:.1f} min of wall time in the invocation that wrote this page.",
        "",
        "## Accuracy vs delay",
        "",
        f"Accuracy in % (mean ± sample std over {n} seeds, {TRIALS} trials per delay; chance 10 %):",
        "",
    ]
    rows = [[arm] + [_fmt_pct([r["accuracy"][str(d)]["accuracy"] for r in recs]) for d in DELAYS]
            for arm, recs in results.items()]  # fmt: skip
    lines += [markdown_table(["arm"] + [f"delay {d}" for d in DELAYS], rows), "",
              "![accuracy vs delay](memory/accuracy_vs_delay.png)", ""]  # fmt: skip
    lines += [
        f"## Within-run variability at delay {LONG}",
        "",
        f"Accuracy at delay {LONG} from each of the last {LAST} kept checkpoints (steps 2000–3000) of every run: the"
        " range within a run (max − min, points of %), then the mean over seeds of that range.",
        "",
    ]
    rows = []
    for arm, recs in results.items():
        ranges = [100 * (max(r["within"].values()) - min(r["within"].values())) for r in recs]
        per_seed = "; ".join(", ".join(f"{100 * v:.0f}" for v in r["within"].values()) for r in recs)
        rows.append([arm, f"{statistics.fmean(ranges):.1f}", f"{max(ranges):.1f}", per_seed])
    lines += [markdown_table(["arm", "mean range", "largest range", "accuracy per checkpoint, per seed (%)"], rows), ""]
    lines += [
        "## Slow points by the fixed finder, and attractors",
        "",
        f"Per model: 64 end-of-delay states of {SLOW_TRIALS} test trials (noise σ = 0.01) searched for {SLOW_STEPS}"
        " Adam steps then polished in float64 (`find_slow_points`); stop reasons after merging duplicates;"
        " stability of the in-bounds points (margin 1e-3). Attractors: the network run forward"
        f" {ATTRACTOR_STEPS} steps from all {SLOW_TRIALS} end-of-delay states, ends merged and polished"
        " (`find_attractors`).",
        "",
    ]
    rows = []
    for arm, recs in results.items():
        for r in recs:
            d = r["dynamics"]
            c = d["counts"]
            st = d["stability_in_bounds"]
            atts = "; ".join(
                f"q={a['speed']:.1e} {a['stability']} |λ|max={a['rho']:.3f} digits {a['classes']}"
                for a in d["attractors"]
            )
            rows.append([arm, Path(r["run"]).name.split("-s")[-1], d["distinct"], c["converged"], c["stalled"],
                         c["max_steps"], c["out_of_bounds"],
                         f"{st.count('stable')}/{st.count('marginal')}/{st.count('unstable')}", len(d["attractors"]),
                         f"{d['unsettled']}/{SLOW_TRIALS}", atts])  # fmt: skip
    head = ["arm", "seed", "distinct", "converged", "stalled", "max steps", "out of bounds",
            "in bounds: stable/marginal/unstable", "attractors", "not settled",
            "attractors: q, stability, largest |λ|, digits whose majority ends there"]  # fmt: skip
    lines += [markdown_table(head, rows), ""]
    lines += [
        f"## Slow-point speed vs per-class accuracy at delay {LONG}",
        "",
        "Per model: for each digit, the in-bounds point with the lowest q among 8 searches from that digit's"
        " end-of-delay states; Spearman ρ between q and the digit's accuracy at delay 100 (the paper expects"
        " ρ < 0). Digits with no in-bounds point are left out.",
        "",
    ]
    rows = []
    for arm, recs in results.items():
        rhos = []
        for r in recs:
            q = r["dynamics"]["class_speeds"]
            a = r["accuracy"][str(LONG)]["per_class"]
            rho, p = speed_vs_accuracy(q, a)
            rhos.append(rho)
            kept = sum(1 for v in q if v == v)
            rows.append([arm, Path(r["run"]).name.split("-s")[-1], kept, f"{rho:.2f}", f"{p:.3f}"])
    lines += [markdown_table(["arm", "seed", "digits with an in-bounds point", "Spearman ρ", "p"], rows), ""]
    lines += [
        "## Slow points over training (seed 0)",
        "",
        "Each digit's slow point (lowest in-bounds q of 8 searches, 500 Adam steps + polish) at every kept"
        " checkpoint; missing markers: no in-bounds point for that digit then.",
        "",
        "![slow points over training](memory/slow_points_over_training.png)",
        "",
    ]
    for arm, rows_ in over.items():
        if "VoCu" in arm:
            t = drop_when_classes_added(rows_)
            drops, ups, p = t["drops"], t["gains"], t["p"]
            lines.append(
                f"- {arm}: at checkpoints where digits were added, {drops} old digits lost accuracy at delay 40 and"
                f" {ups} gained (one-sided sign test p = {p:.3g})."
            )
    lines += ["", HAND_WRITTEN, "", kept_hand_written(doc), ""]
    doc.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return doc


def main() -> None:
    torch.set_num_threads(1)
    s = settings(False)
    t0 = time.perf_counter()
    results: dict[str, list[dict]] = {}
    for arm in ARMS:
        for seed in s.seeds:
            run_dir = s.root / "train" / f"{arm.replace(' ', '_')}-s{seed}"
            if not (run_dir / "done.json").is_file():
                continue
            rec = evaluate(run_dir)
            print(f"{arm} s{seed}: acc@{LONG} {rec['accuracy'][str(LONG)]['accuracy']:.3f}", flush=True)
            results.setdefault(arm, []).append(rec)
    over = {}
    for arm in ARMS:
        if arm == "none":
            continue
        run_dir = s.root / "train" / f"{arm.replace(' ', '_')}-s0"
        over[arm] = over_training(run_dir)
        print(f"over training {arm}: {len(over[arm])} checkpoints", flush=True)
    print(f"wrote {write_doc(results, over, time.perf_counter() - t0, s.doc)}", flush=True)


if __name__ == "__main__":
    main()
