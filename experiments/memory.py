"""Evidence for issues 7 and 11: Haviv, Rivkind & Barak (ICML 2019) on delayed recall of 8x8 digits, at CPU scale.

Trains a 100-unit GRU on delayed recall (Tmax = 20, 10 classes) in five arms (DeCu and VoCu each with the
threshold rule and with the authors' fixed step schedule, and no curriculum), several seeds each, with the
same step budget and a checkpoint kept every ``KEEP_EVERY`` steps; then ``memory_evidence.py`` evaluates them
(accuracy vs delay, within-run spread, slow points, attractors, speed vs accuracy, slow points over training)
and writes ``docs/results/memory.md``. With ``--finetune`` it instead runs issue 7's regulariser fine-tunes on
the DeCu models and writes ``docs/results/memory_finetune.md``. Resumable: finished runs are skipped and every
evaluation is cached as JSON next to its run; ``--quick`` is a small smoke version under
``runs/experiments/memory-quick``.

    PYTHONPATH=src:experiments .venv/bin/python experiments/memory.py [--quick] [--train-only] [--finetune]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import math
import platform
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from common import cached, fmt, markdown_table, mean_std, plot_curves, run_arm
from mnemonet.analysis import (
    TaskRegularizer,
    answer_offset,
    class_slow_points,
    per_class_accuracy,
    plot_accuracy_vs_delay,
    run_trajectories,
    speed_vs_accuracy,
)
from mnemonet.app import load_run, read_metrics
from mnemonet.app.run import CONFIG_FILE
from mnemonet.tasks.delayed_recall import DelayedRecallTask
from mnemonet.training.checkpoint import atomic_write_text
from mnemonet.training.config import CurriculumConfig
from mnemonet.training.logging import MetricsLog
from mnemonet.training.trainer import Trainer

ARMS = {  # label -> preset (100-unit GRU, Tmax 20, 10 classes; they differ only in the curriculum)
    "DeCu": "delayed_recall_gru-small",  # threshold rule: next stage after an evaluation at >= 90 %
    "DeCu fixed": "delayed_recall_gru_decu_schedule-small",  # the authors' fixed step schedule
    "VoCu": "delayed_recall_gru_vocu-small",
    "VoCu fixed": "delayed_recall_gru_vocu_schedule-small",
    "none": "delayed_recall_gru_nocu-small",
}
KEEP_EVERY = 250  # a checkpoint kept every so many steps, for the over-training analysis
# fine-tune arm -> (regulariser kind, λ); None is the λ = 0 control (same fine-tune, no extra loss)
FINETUNES: dict[str, tuple[str, float] | None] = {
    "λ=0": None,
    "speed λ=1e-3": ("speed", 1e-3),  # the paper's λ
    "speed λ=1e-4": ("speed", 1e-4),
    "trajectory_speed λ=1e-2": ("trajectory_speed", 1e-2),
    "anchor_pull λ=3e-3": ("anchor_pull", 3e-3),
}
EVAL_SEED = 20_190_607  # every model sees the same test trials at every delay (paired comparisons)
SLOW_SEED = 7


@dataclass(frozen=True)
class Settings:
    """Everything that sizes the experiment."""

    seeds: tuple[int, ...]
    steps: int
    delays: tuple[int, ...]
    trials: int
    long_delay: int
    finetune_steps: int
    finetune_lr: float
    slow_trials: int
    slow_max_steps: int
    root: Path
    doc: Path
    figures: Path
    quick: bool


def settings(quick: bool) -> Settings:
    if quick:
        root = Path("runs/experiments/memory-quick")
        return Settings(
            (0, 1),
            300,
            (5, 19, 100, 200),
            200,
            100,
            40,
            5e-4,
            200,
            300,
            root,
            root / "memory.md",
            root / "memory",
            True,
        )
    return Settings(
        (0, 1, 2, 3),
        3000,
        (5, 10, 19, 40, 60, 100, 200),
        1000,
        100,
        500,
        5e-4,
        1000,
        3000,
        Path("runs/experiments/memory"),
        Path("docs/results/memory.md"),
        Path("docs/results/memory"),
        False,
    )


# -- evaluation ---------------------------------------------------------------------------------------


def full_task(task: DelayedRecallTask) -> DelayedRecallTask:
    """The task with every class in play and the full window (whatever stage a curriculum stopped at)."""
    task.num_classes = task.max_classes
    task.window = task.t_max
    return task


@torch.no_grad()
def recall_by_delay(
    model: Any,
    task: DelayedRecallTask,
    delays: Sequence[int],
    n: int,
    seed: int = EVAL_SEED,
    batch_size: int = 250,
) -> dict[str, dict[str, Any]]:
    """Accuracy, per-class accuracy and null-answer rate at each fixed delay on the test split.

    Returns:
        ``{str(delay): {"accuracy": float, "per_class": [C floats], "null_rate": float}}``.
    """
    model.eval()
    g = torch.Generator().manual_seed(seed)
    out = {}
    for delay in delays:
        preds, labels = [], []
        for start in range(0, n, batch_size):
            batch = task.sample_at_delay(min(batch_size, n - start), int(delay), g, split="test")
            logits, _ = model(batch.x)  # (B, T, C + 1)
            rows = torch.arange(batch.x.shape[0])
            preds.append(logits[rows, batch.info["ta"]].argmax(-1) - answer_offset(batch))  # (B,) null -> -1
            labels.append(batch.info["labels"])
        p, y = torch.cat(preds), torch.cat(labels)
        out[str(delay)] = {
            "accuracy": float((p == y).double().mean()),
            "per_class": per_class_accuracy(p, y, task.max_classes).tolist(),
            "null_rate": float((p < 0).double().mean()),
        }
    return out


def slow_point_speeds(model: Any, task: DelayedRecallTask, s: Settings) -> dict[str, list]:
    """One slow point per class (float64 search from the end-of-delay states of test trials).

    Returns:
        ``{"speeds": [C] q of each class's slowest point (NaN if none), "converged": [C] bools}``.
    """
    model.eval()
    g = torch.Generator().manual_seed(SLOW_SEED)
    batch = task.sample(s.slow_trials, g, "test")
    traj = run_trajectories(
        model,
        batch.x,
        labels=batch.info["labels"],
        ts=batch.info["ts"],
        ta=batch.info["ta"],
        answer_offset=answer_offset(batch),
    )
    m64 = copy.deepcopy(model).double().eval()
    found = class_slow_points(
        m64,
        traj.noise_inputs().mean(0).double(),
        traj.end_of_delay().double(),
        traj.labels,
        generator=g,
        compute_jacobians=False,
        max_steps=s.slow_max_steps,
    )
    speeds, converged = [math.nan] * task.max_classes, [False] * task.max_classes
    for c, q, ok in zip(found.labels.tolist(), found.speeds.tolist(), found.converged.tolist(), strict=True):
        speeds[c], converged[c] = q, bool(ok)
    return {"speeds": speeds, "converged": converged}


def evaluate_model(
    run_dir: Path,
    model: Any,
    task: DelayedRecallTask,
    s: Settings,
    slow: bool = True,
) -> dict:
    """Accuracy by delay (and, with ``slow``, per-class slow-point speeds), cached next to the run."""

    def recall() -> dict:
        return recall_by_delay(model, task, s.delays, s.trials)

    def speeds() -> dict:
        return slow_point_speeds(model, task, s)

    key = {"delays": list(s.delays), "trials": s.trials, "seed": EVAL_SEED}
    result = {"recall": cached(run_dir / "eval_delays.json", key, recall)}
    if slow:
        key = {"trials": s.slow_trials, "max_steps": s.slow_max_steps, "seed": SLOW_SEED}
        result["slow"] = cached(run_dir / "eval_slow_points.json", key, speeds)
    return result


# -- training and fine-tuning --------------------------------------------------------------------------


def full_task_from(run_dir: Path) -> int:
    """The step from which a run trained on its last curriculum stage (the evaluation that advanced it; 0
    without a curriculum)."""
    records = read_metrics(run_dir)
    last = max(r.get("stage", 0) for r in records)
    return max((int(r["step"]) for r in records if r.get("stage", 0) < last), default=0)


def train_one(arm: str, seed: int, s: Settings) -> dict:
    """Train one arm and seed (or find it done), keeping a checkpoint every ``KEEP_EVERY`` steps."""
    keep = max(1, min(KEEP_EVERY, s.steps // 4))
    overrides = [f"trainer.steps={s.steps}", f"trainer.checkpoint_every={keep}", "trainer.tensorboard=false",
                 f"trainer.keep_checkpoints={s.steps // keep + 1}"]  # fmt: skip
    return run_arm(ARMS[arm], arm.replace(" ", "_"), seed, s.root / "train", overrides, threads=1)


def train_arms(s: Settings) -> dict[str, list[dict]]:
    """Every arm x seed trained (or found done), evaluated; ``{arm: [record per seed]}``."""
    results: dict[str, list[dict]] = {}
    for arm, _preset in ARMS.items():
        for seed in s.seeds:
            record = train_one(arm, seed, s)
            run = load_run(record["run"], "last")
            stage = run.task.state_dict()
            t0 = time.perf_counter()
            ev = evaluate_model(Path(record["run"]), run.model, full_task(run.task), s)
            print(
                f"{arm} s{seed}: trained {record['seconds']:.0f}s, stage {stage}, "
                f"acc@{s.long_delay} {ev['recall'][str(s.long_delay)]['accuracy']:.3f} "
                f"(eval {time.perf_counter() - t0:.0f}s)",
                flush=True,
            )
            full = full_task_from(Path(record["run"]))
            record = {**record, "seed": seed, "stage": stage, "full_from": full, **ev}
            results.setdefault(arm, []).append(record)
    return results


def finetune(base: Path, name: str, spec: tuple[str, float] | None, s: Settings) -> dict:
    """Fine-tune the trained model in ``base`` for ``s.finetune_steps`` with one regulariser (or none).

    Every arm starts from the same weights with a fresh Adam, the same seed (so the same training batches)
    and the full task (10 classes, window Tmax); only the extra loss differs. A killed fine-tune restarts
    from scratch, so its anchors always come from the base model.
    """
    slug = name.replace(" ", "_").replace("λ=", "l")
    out = s.root / "finetune" / f"{base.name}-{slug}"
    done = out / "done.json"
    if done.is_file():
        record = json.loads(done.read_text())
    else:
        if out.exists():
            shutil.rmtree(out)
        run = load_run(base, "last")
        task = full_task(run.task)
        cfg = dataclasses.replace(
            run.config.trainer,
            steps=s.finetune_steps,
            lr=s.finetune_lr,
            schedule="cosine",
            warmup_steps=0,
            eval_every=max(1, s.finetune_steps // 5),
            checkpoint_every=s.finetune_steps,
            tensorboard=False,
            seed=run.config.trainer.seed + 1000,
            progress="off",
            threads=1,
        )
        extra = None
        if spec is not None:
            kind, weight = spec
            extra = TaskRegularizer(
                model=run.model,
                task=task,
                kind=kind,
                weight=weight,
                anchors="centres",
                seed=run.config.trainer.seed,
                correct_only=not s.quick,
            )
        config = dataclasses.replace(
            run.config,
            trainer=cfg,
            curriculum=CurriculumConfig(),
            description=f"fine-tune of {base} with {name} as extra loss, by experiments/memory.py",
        )
        out.mkdir(parents=True)
        atomic_write_text(out / CONFIG_FILE, config.to_yaml())
        run.model.train()
        probe = task.sample(256, torch.Generator().manual_seed(EVAL_SEED), "train")
        logits, _, states = run.model(probe.x, return_states=True)
        start = {"task_loss": float(task.loss(logits, probe).detach())}
        if extra is not None:
            start["term"] = float(extra(run.model, probe, logits, states).detach())
        trainer = Trainer(run.model, task, cfg, None, out, "cpu", extra, progress="off")
        log = MetricsLog(out, tensorboard=False)
        t0 = time.perf_counter()
        try:
            result = trainer.fit(log)
        finally:
            log.close()
        record = {
            "run": str(out),
            "seconds": time.perf_counter() - t0,
            "last": result.last,
            "step": result.step,
            "start": start,
        }
        atomic_write_text(done, json.dumps(record, indent=1))
    run = load_run(out, "last")
    ev = evaluate_model(out, run.model, full_task(run.task), s, slow=False)
    return {**record, **ev}


def finetune_all(results: dict[str, list[dict]], s: Settings) -> dict[str, list[dict]]:
    """``{fine-tune arm: [record per DeCu seed]}``."""
    out: dict[str, list[dict]] = {}
    for base in results["DeCu"]:
        for name, spec in FINETUNES.items():
            rec = finetune(Path(base["run"]), name, spec, s)
            print(
                f"fine-tune {Path(base['run']).name} {name}: {rec['seconds']:.0f}s, "
                f"acc@{s.long_delay} {rec['recall'][str(s.long_delay)]['accuracy']:.3f}",
                flush=True,
            )
            out.setdefault(name, []).append({**rec, "seed": base["seed"]})
    return out


# -- statistics ------------------------------------------------------------------------------------------


def permutation_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact two-sided permutation p of the difference in means of two small independent samples."""
    pooled, n = list(a) + list(b), len(a)
    observed = abs(statistics.fmean(a) - statistics.fmean(b))
    hits = total = 0
    for idx in itertools.combinations(range(len(pooled)), n):
        x = [pooled[i] for i in idx]
        y = [pooled[i] for i in range(len(pooled)) if i not in idx]
        hits += abs(statistics.fmean(x) - statistics.fmean(y)) >= observed - 1e-12
        total += 1
    return hits / total


def sign_flip_p(d: Sequence[float]) -> float:
    """Exact two-sided sign-flip p of the mean of paired differences (min 2 / 2^n)."""
    observed = abs(statistics.fmean(d))
    flips = list(itertools.product((1, -1), repeat=len(d)))
    means = [abs(statistics.fmean(f * x for f, x in zip(fl, d, strict=True))) for fl in flips]
    hits = sum(m >= observed - 1e-12 for m in means)
    return hits / len(flips)


def above_chance_p(accuracy: float, n: int, chance: float = 0.1) -> float:
    """Exact one-sided binomial p of at least ``accuracy * n`` hits in ``n`` trials at ``chance``."""
    k = round(accuracy * n)
    log_pmf = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(chance)
        + (n - i) * math.log1p(-chance)
        for i in range(k, n + 1)
    ]  # fmt: skip
    return min(1.0, sum(math.exp(v) for v in log_pmf))


def acc(rec: dict, delay: int) -> float:
    """A model's accuracy at ``delay``."""
    return rec["recall"][str(delay)]["accuracy"]


def null_rate(rec: dict, delay: int) -> float:
    """A model's share of null answers at ``ta`` at ``delay``."""
    return rec["recall"][str(delay)]["null_rate"]


# -- figures and the document ----------------------------------------------------------------------------


def median_speed(rec: dict) -> float:
    """The median of a model's per-class slow-point speeds (NaN classes left out)."""
    return statistics.median(q for q in rec["slow"]["speeds"] if math.isfinite(q))


def plot_speed_scatter(results: dict[str, list[dict]], delay: int, path: Path) -> Path:
    """Per-class slow-point speed vs per-class accuracy at ``delay``: a panel per arm, a colour per seed;
    a last panel with one point per model (median class speed vs overall accuracy)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    panels = len(results) + 1
    fig = Figure(figsize=(3.9 * panels, 3.7), layout="constrained")
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    for i, (arm, recs) in enumerate(results.items()):
        ax = axes[i]
        qs, accs = [], []
        for j, rec in enumerate(recs):
            q = rec["slow"]["speeds"]
            a = rec["recall"][str(delay)]["per_class"]
            ax.scatter(q, a, s=22, label=f"seed {rec['seed']}", color=f"C{j}", edgecolors="k", linewidths=0.3)
            for c, (x, y) in enumerate(zip(q, a, strict=True)):
                ax.annotate(str(c), (x, y), xytext=(3, 2), textcoords="offset points", fontsize=6)
            qs += q
            accs += a
        rho, p = speed_vs_accuracy(qs, accs)
        ax.set_title(f"{arm}: classes, pooled ρ = {rho:.2f} (p = {p:.2g})", fontsize=9)
        ax.set_ylabel(f"per-class accuracy at delay {delay}")
        if i == 0:
            ax.legend(frameon=False, fontsize=7)
    ax = axes[-1]
    qs, accs = [], []
    for k, (arm, recs) in enumerate(results.items()):
        q, a = [median_speed(r) for r in recs], [acc(r, delay) for r in recs]
        ax.scatter(q, a, s=30, marker="s", color=f"C{k + 4}", label=arm, edgecolors="k", linewidths=0.3)
        qs += q
        accs += a
    rho, p = speed_vs_accuracy(qs, accs)
    ax.set_title(f"models: ρ = {rho:.2f} (p = {p:.2g})", fontsize=9)
    ax.set_ylabel(f"accuracy at delay {delay}")
    ax.legend(frameon=False, fontsize=7)
    for i, ax in enumerate(axes):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide within one decade
        ax.set_xlabel("median class speed q" if i == panels - 1 else "slow-point speed q (per class)")
        ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    return path


def plot_finetune_deltas(ft: dict[str, list[dict]], delays: Sequence[int], path: Path) -> Path:
    """Paired accuracy differences (regulariser minus λ=0) at each delay: a dot per seed, mean ± std."""
    from matplotlib.figure import Figure

    arms = [a for a in ft if a != "λ=0"]
    fig = Figure(figsize=(4.6 * len(delays), 3.8), layout="constrained")
    for i, delay in enumerate(delays):
        ax = fig.add_subplot(1, len(delays), i + 1)
        for k, arm in enumerate(arms):
            d = [100 * (acc(r, delay) - acc(r0, delay)) for r, r0 in zip(ft[arm], ft["λ=0"], strict=True)]
            m, sd = mean_std(d)
            ax.scatter([k] * len(d), d, color="C0", s=18, alpha=0.7, zorder=3)
            ax.errorbar([k + 0.15], [m], [sd], fmt="o", color="k", ms=4, capsize=3, zorder=4)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xticks(range(len(arms)), [a.replace(" ", "\n") for a in arms], fontsize=7)
        ax.set_ylabel("Δ accuracy vs λ=0 (points)")
        ax.set_title(f"delay {delay}", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    return path


def curve(recs: list[dict], delays: Sequence[int]) -> torch.Tensor:
    return torch.tensor([[acc(r, d) for d in delays] for r in recs], dtype=torch.float64)  # (seeds, delays)


CONCLUSIONS = "## What holds and what does not"


def kept_conclusions(doc: Path) -> str:
    """The hand-written conclusions of an existing ``doc`` (kept when the tables are regenerated)."""
    if doc.is_file() and CONCLUSIONS in doc.read_text():
        return doc.read_text().split(CONCLUSIONS, 1)[1].strip()
    return "(to be written from the tables above)"


def write_doc(results: dict, ft: dict, s: Settings, timings: dict) -> Path:
    delays, L = list(s.delays), s.long_delay
    long2 = max(delays)
    figs = s.figures
    plot_accuracy_vs_delay(
        {arm: (delays, curve(recs, delays)) for arm, recs in results.items()},
        trained_max=19,
        chance=0.1,
        title="Delayed recall, GRU 100, Tmax 20 (test split)",
        path=figs / "accuracy_vs_delay.png",
    )
    plot_accuracy_vs_delay(
        {arm: (delays, curve(recs, delays)) for arm, recs in ft.items()},
        trained_max=19,
        chance=0.1,
        title=f"DeCu models after {s.finetune_steps} fine-tune steps",
        path=figs / "finetune_accuracy_vs_delay.png",
    )
    plot_speed_scatter(results, L, figs / "speed_vs_accuracy.png")
    plot_finetune_deltas(ft, [L, long2], figs / "finetune_deltas.png")
    plot_curves(
        {arm: [r["run"] for r in recs] for arm, recs in results.items()},
        "valid_accuracy",
        figs / "training_curves.png",
        "valid. accuracy (current stage)",
    )
    rel = figs.relative_to(s.doc.parent)
    n = len(s.seeds)

    # (1)+(2) accuracy vs delay
    rows = [[arm, *[fmt([acc(r, d) for r in recs]) for d in delays]] for arm, recs in results.items()]
    table12 = markdown_table(["arm", *[f"delay {d}" for d in delays]], rows)
    null_rows = [[a, *[fmt([null_rate(r, d) for r in recs]) for d in delays]] for a, recs in results.items()]
    table_null = markdown_table(["arm", *[f"delay {d}" for d in delays]], null_rows)
    seeds_rows = [
        [
            arm,
            r["seed"],
            *[f"{100 * acc(r, d):.1f}" for d in delays],
            ", ".join(f"{k}={v}" for k, v in r["stage"].items()),
            s.steps - r["full_from"],
        ]
        for arm, recs in results.items()
        for r in recs
    ]
    seeds_head = ["arm", "seed", *map(str, delays), "curriculum at the end", "steps on the full task"]
    table_seeds = markdown_table(seeds_head, seeds_rows)
    arms = list(results)
    pair_rows = []
    for a, b in itertools.combinations(arms, 2):
        for d in (L, long2):
            xa, xb = [acc(r, d) for r in results[a]], [acc(r, d) for r in results[b]]
            diff = 100 * (statistics.fmean(xa) - statistics.fmean(xb))
            pair_rows.append([f"{a} − {b}", d, f"{diff:+.1f}", f"{permutation_p(xa, xb):.3f}"])
    table_pairs = markdown_table(["comparison", "delay", "Δ mean (points)", "permutation p"], pair_rows)
    above = {arm: [acc(r, long2) > 0.1 for r in recs] for arm, recs in results.items()}
    far = [d for d in delays if d > 19]
    chance_rows = [
        [arm, *[f"{sum(above_chance_p(acc(r, d), s.trials) < 0.05 for r in recs)}/{len(recs)}" for d in far]]
        for arm, recs in results.items()
    ]
    table_chance = markdown_table(["arm", *[f"delay {d}" for d in far]], chance_rows)

    # (3) speed vs accuracy
    sp_rows, pooled = [], {}
    for arm, recs in results.items():
        qs, accs, rhos = [], [], []
        for r in recs:
            q, a = r["slow"]["speeds"], r["recall"][str(L)]["per_class"]
            rho, p = speed_vs_accuracy(q, a)
            rhos.append(rho)
            conv = sum(r["slow"]["converged"])
            span = f"{min(q):.2g} … {max(q):.2g}"
            sp_rows.append([arm, r["seed"], f"{rho:+.2f}", f"{p:.3f}", f"{conv}/{len(q)}", span])
            qs += q
            accs += a
        pooled[arm] = (*speed_vs_accuracy(qs, accs), *mean_std(rhos), sum(x < 0 for x in rhos), len(rhos))
    sp_head = ["arm", "seed", f"Spearman ρ (speed, acc@{L})", "permutation p", "converged", "speed range"]
    table_sp = markdown_table(sp_head, sp_rows)
    pooled_rows = []
    for a, (rho_p, p_p, rho_m, rho_s, neg, cnt) in pooled.items():
        pooled_rows.append([a, f"{rho_m:+.2f} ± {rho_s:.2f}", f"{neg}/{cnt}", f"{rho_p:+.2f}", f"{p_p:.3g}"])
    all_q = [q for recs in results.values() for r in recs for q in r["slow"]["speeds"]]
    all_a = [a for recs in results.values() for r in recs for a in r["recall"][str(L)]["per_class"]]
    rho_all, p_all = speed_vs_accuracy(all_q, all_a)
    pooled_rows.append(["all arms", "", "", f"{rho_all:+.2f}", f"{p_all:.3g}"])
    pooled_head = ["arm", "ρ per seed (mean ± std)", "seeds with ρ < 0", "pooled ρ (classes)", "pooled p"]
    table_pooled = markdown_table(pooled_head, pooled_rows)
    run_q = [median_speed(r) for recs in results.values() for r in recs]
    run_a = [acc(r, L) for recs in results.values() for r in recs]
    rho_run, p_run = speed_vs_accuracy(run_q, run_a)

    # (4) fine-tunes
    ft_rows = [[arm, *[fmt([acc(r, d) for r in recs]) for d in delays]] for arm, recs in ft.items()]
    base_rows = [["before fine-tuning", *[fmt([acc(r, d) for r in results["DeCu"]]) for d in delays]]]
    table_ft = markdown_table(["DeCu model, fine-tune", *[f"delay {d}" for d in delays]], base_rows + ft_rows)
    delta_rows = []
    for arm, recs in ft.items():
        if arm == "λ=0":
            continue
        row = [arm]
        for d in (19, L, long2):
            diffs = [acc(r, d) - acc(r0, d) for r, r0 in zip(recs, ft["λ=0"], strict=True)]
            row += [" ".join(f"{100 * x:+.1f}" for x in diffs), f"{fmt(diffs)} (p={sign_flip_p(diffs):.2f})"]
        delta_rows.append(row)
    table_delta = markdown_table(
        [
            "arm",
            "Δ@19 per seed",
            "Δ@19 mean ± std",
            f"Δ@{L} per seed",
            f"Δ@{L} mean ± std",
            f"Δ@{long2} per seed",
            f"Δ@{long2} mean ± std",
        ],
        delta_rows,
    )

    start_rows = []
    for arm, recs in ft.items():
        terms = [r["start"]["term"] for r in recs if "term" in r["start"]]
        term = f"{statistics.fmean(terms):.3g}" if terms else "—"
        start_rows.append([arm, f"{statistics.fmean(r['start']['task_loss'] for r in recs):.3g}", term])
    table_start = markdown_table(["fine-tune", "task loss", "λ · term"], start_rows)
    train_secs = [r["seconds"] for recs in results.values() for r in recs]
    ft_secs = {arm: [r["seconds"] for r in recs] for arm, recs in ft.items()}
    ft_time = ", ".join(f"{arm}: {statistics.fmean(v):.0f} s" for arm, v in ft_secs.items())
    total_min = timings.get("total", math.nan) / 60
    train_total = sum(train_secs) / 60
    ft_total = sum(sum(v) for v in ft_secs.values()) / 60
    cmd = "PYTHONPATH=src:experiments .venv/bin/python experiments/memory.py"
    cmd += " --quick" if s.quick else ""
    train_mean, train_min, train_max = statistics.fmean(train_secs), min(train_secs), max(train_secs)
    text = f"""# Memory in delayed recall: Haviv, Rivkind & Barak (ICML 2019) at CPU scale (issue 7)

Regenerate everything on this page (tables, figures; runs are cached under `{s.root}` and skipped when done):

```
{cmd}
```

**Setup.** Delayed recall of scikit-learn's 8x8 digits (the paper uses MNIST): one image at `ts`, noise
elsewhere, a trigger at `ta`, report the digit at `ta` and null everywhere else; Tmax = 20, `ta − ts`
in 5 … 19 during training (so 19 is the longest trained delay; 100 ≈ 5× and 200 ≈ 10× it). Model: GRU
with 100 units and a linear readout (the paper: 200 units). Three arms differing only in the curriculum —
DeCu (window 6, 8, …, 20), VoCu (2, 3, …, 10 classes), none — each {n} seeds, the **same budget of
{s.steps} steps** (batch 64, Adam 3e-3 with a cosine decay, clip 1, curriculum threshold 90 % on 512
validation trials every 100 steps; presets `{"`, `".join(ARMS.values())}` with `trainer.steps={s.steps}`).
The paper trains 140k steps at lr 1e-5; this is about 35× fewer steps at a much larger learning rate.
The same step budget for every arm means the curriculum arms spend part of it on easier stages; the
per-seed table gives the stage reached at the end and how many of the {s.steps} steps were spent on the
full task (10 classes, window 20). Every model is evaluated from its last checkpoint
with all 10 classes and the full window, on the **same {s.trials} test trials per delay** (image at step 0,
fixed seed), so arm and fine-tune comparisons are paired at the trial level.

**Machine and time.** A shared 2-core CPU (other jobs running), 1 torch thread per run, runs one at a time,
torch {torch.__version__}, Python {platform.python_version()}. Training: {train_mean:.0f} s per run on
average ({train_min:.0f}–{train_max:.0f} s); fine-tunes of {s.finetune_steps} steps: {ft_time}.
All invocations of the script together (training, evaluation, slow points, fine-tunes):
{total_min:.1f} min of wall time: training {train_total:.1f} min, fine-tunes {ft_total:.1f} min, the rest
evaluation and slow points (a re-run only redoes what is missing; regenerating this page takes seconds).

## (1) + (2) Accuracy vs delay, and the three protocols

Accuracy in % (mean ± sample std over {n} seeds, {s.trials} trials per delay per model; chance 10 %):

{table12}

![accuracy vs delay]({rel}/accuracy_vs_delay.png)

Per seed (accuracy in %):

{table_seeds}

Models whose accuracy is above chance (exact one-sided binomial test against 10 %, p < 0.05, on its
{s.trials} trials), per delay beyond the trained range:

{table_chance}

Share of trials answered with the null class at `ta` (the memory faded rather than turned into another digit):

{table_null}

Differences between arms at the long delays (exact permutation test over the {2 * n} models, {n} vs {n}; the
smallest p this design can give is {2 / math.comb(2 * n, n):.3f}):

{table_pairs}

Learning curves (validation accuracy on the current curriculum stage, so a curriculum arm's curve is on an
easier task until its last stage):

![training curves]({rel}/training_curves.png)

## (3) Slow-point speed vs per-class accuracy at delay {L}

For each model: {s.slow_trials} test trials, end-of-delay states (step `ta − 1`) grouped by class, one slow
point per class found with `class_slow_points` (the class mean and 15 sampled states as starting points,
noise-mean input with the trigger off, float64, at most {s.slow_max_steps} Adam steps), the slowest
converged one kept; its speed q = ½‖F(h, I) − h‖² against the class's accuracy at delay {L}. The paper
expects ρ < 0 (slower point, longer memory).

{table_sp}

{table_pooled}

Across the {len(run_q)} models (median class speed vs overall accuracy at delay {L}): Spearman
ρ = {rho_run:+.2f}, p = {p_run:.3g}.

![speed vs accuracy]({rel}/speed_vs_accuracy.png)

## (4) Regularisers: extra training with vs without

From each DeCu model's last checkpoint, {s.finetune_steps} more steps (Adam restarted, lr {s.finetune_lr}
with a cosine decay, batch 64, the full task, training seed shared by all arms of a model so every arm
sees the same batches). Arms: the λ = 0 control (identical, no extra loss); the paper's speed penalty
λ Σ_k Σ_r ‖F(h̄_k, I_r) − h̄_k‖² at the class centres of mass (K = 10 anchors, R = 16 noise
inputs, anchors from 512 trials of the model before fine-tuning, held fixed) with the paper's λ = 1e-3 and a
10× smaller λ; the trajectory-speed option (mean ‖h_(t+1) − h_t‖² over the image and delay steps) and
the anchor-pull option (mean ‖h_t − h̄_c‖² over those steps). How λ was chosen: on the first DeCu
model (its mid-training checkpoint at step 1500), before any fine-tune was run, the unweighted terms
were measured on one training batch: speed ≈ 400 summed over the 160 anchor × input pairs, trajectory
speed ≈ 4, anchor pull ≈ 11, against a task loss of ≈ 0.008 on that batch and a validation loss of
≈ 0.05. The paper's λ = 1e-3 then makes the speed term ≈ 0.4, ten times the validation loss, so the
second speed λ and the λ of the two options were set to make the term start near the validation loss
(≈ 0.04). No λ was tuned on the
long-delay results. The terms at the start of each fine-tune (λ included, mean over the {n} models, on 256
training trials):

{table_start}

Accuracy in % (mean ± std over the {n} DeCu seeds):

{table_ft}

Paired differences, regulariser minus λ = 0, in accuracy points (per seed, then mean ± std with the exact
sign-flip p over the {n} pairs; with {n} pairs the smallest possible p is {2 / 2**n:.3f}):

{table_delta}

![fine-tune deltas]({rel}/finetune_deltas.png)

![fine-tune accuracy vs delay]({rel}/finetune_accuracy_vs_delay.png)

{CONCLUSIONS}

{{conclusions}}
"""
    s.doc.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "above_chance_at_long": above,
        "pooled": pooled,
        "run_level": (rho_run, p_run),
        "rho_all": (rho_all, p_all),
    }
    atomic_write_text(s.doc, text.replace("{conclusions}", kept_conclusions(s.doc)) + "\n")
    atomic_write_text(
        s.root / "summary.json",
        json.dumps({"summary": summary, "results": results, "finetune": ft}, indent=1, default=str),
    )
    return s.doc


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, few steps: a one-minute smoke run")
    parser.add_argument("--train-only", action="store_true", help="train the arms only (no evaluation)")
    parser.add_argument(
        "--finetune", action="store_true", help="also the regulariser fine-tunes of issue 7 (memory_finetune.md)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    s = settings(args.quick)
    t0 = time.perf_counter()
    for seed, arm in itertools.product(s.seeds, ARMS):  # one run at a time, each arm's seeds in turn
        rec = train_one(arm, seed, s)
        print(f"{arm} s{seed}: {rec['seconds']:.0f}s", flush=True)
    if args.train_only:
        return
    if not args.finetune:
        import memory_evidence  # the issue-11 evidence: docs/results/memory.md

        memory_evidence.main()
        return
    results = train_arms(s)
    ft = finetune_all(results, s)
    this = time.perf_counter() - t0
    timings_path = s.root / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    timings["this"] = this
    timings["total"] = timings.get("total", 0.0) + this  # all invocations together
    atomic_write_text(timings_path, json.dumps(timings))
    s = dataclasses.replace(s, doc=s.doc.with_name("memory_finetune.md"))
    print(f"wrote {write_doc(results, ft, s, timings)} in {time.perf_counter() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
