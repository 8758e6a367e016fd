"""Slow points over training (Haviv, Rivkind & Barak, ICML 2019, Fig. 5): each class's slow point and its
accuracy at every kept checkpoint, the curriculum stage of each, a figure and a paired test.

:func:`class_speeds_over_training` takes the checkpoints as ``(step, model, task)`` (the task at the stage the
run was in, with ``num_classes`` and ``window``) and, for each, grows one slow point per class from the
end-of-delay states of test trials on the full task (:func:`~mnemonet.analysis.speed.class_slow_points`: the
in-bounds point with the lowest q) and measures each class's accuracy at one delay. The paper's observations
can then be checked: under VoCu a new class's slow point appears and the old classes' accuracy drops when it
is added (:func:`drop_when_classes_added`, a paired sign test); under DeCu speeds fall gradually.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from mnemonet.analysis.regularizers import answer_offset
from mnemonet.analysis.speed import class_slow_points, per_class_accuracy
from mnemonet.analysis.trajectories import run_trajectories

Model = Any


def _constant_input(task: Any, model: Model) -> torch.Tensor:
    """The paper's constant input: the noise mean on the image channels, trigger off."""
    x = torch.full((model.input_size,), float(task.noise_mean))
    x[task.image_size] = 0.0
    return x


def class_speeds_over_training(
    checkpoints: Iterable[tuple[int, Model, Any]],
    delay: int,
    trials: int = 300,
    per_class: int = 8,
    max_steps: int = 500,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per checkpoint: ``{"step", "classes", "window", "speeds" [C], "accuracy" [C]}``.

    Args:
        checkpoints: ``(step, model, task)`` in training order; the task as the run had it then (a curriculum's
            stage); it is switched to all classes and the full window for the measurements.
        delay: the delay (ta − ts) of the per-class accuracy.
        trials: test trials for the end-of-delay states and for the accuracy.
        per_class, max_steps: the slow-point search of each class (see ``class_slow_points``).
        seed: seed of the trials and the searches (the same at every checkpoint).

    Returns:
        Rows; ``speeds[c]`` is NaN when class c had no slow point in bounds.
    """
    rows = []
    for step, model, task in checkpoints:
        model.eval()
        classes, window = int(task.num_classes), int(task.window)
        task.num_classes, task.window = task.max_classes, task.t_max
        g = torch.Generator().manual_seed(seed)
        b = task.sample(trials, g, "test")
        traj = run_trajectories(model, b.x, labels=b.info["labels"], ts=b.info["ts"], ta=b.info["ta"],
                                answer_offset=answer_offset(b))  # fmt: skip
        per = class_slow_points(model, _constant_input(task, model), traj.end_of_delay(), traj.labels,
                                per_class=per_class, noise=0.01, generator=g, compute_jacobians=False,
                                max_steps=max_steps)  # fmt: skip
        speeds = [math.nan] * task.max_classes
        for c, q in zip(per.labels.tolist(), per.speeds.tolist(), strict=True):
            speeds[c] = q
        long = task.sample_at_delay(trials, delay, torch.Generator().manual_seed(seed + 1), split="test")
        with torch.no_grad():
            logits, _ = model(long.x)
        pred = logits[torch.arange(trials), long.info["ta"]].argmax(-1) - answer_offset(long)
        acc = per_class_accuracy(pred, long.info["labels"], task.max_classes).tolist()
        task.num_classes, task.window = classes, window
        rows.append({"step": int(step), "classes": classes, "window": window, "speeds": speeds, "accuracy": acc})
    return rows


def drop_when_classes_added(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Paired test of the VoCu observation: when classes are added, the old classes' accuracy drops.

    For every pair of consecutive checkpoints across which ``classes`` grew, each class already in play
    gives one paired difference of accuracy; the one-sided sign test asks whether drops outnumber gains.

    Returns:
        ``{"drops", "gains", "p"}`` (p NaN without any pair).
    """
    drops = gains = 0
    for a, b in itertools.pairwise(rows):
        if b["classes"] > a["classes"]:
            for c in range(a["classes"]):
                d = b["accuracy"][c] - a["accuracy"][c]
                drops += d < 0
                gains += d > 0
    n = drops + gains
    p = sum(math.comb(n, k) for k in range(drops, n + 1)) / 2**n if n else math.nan
    return {"drops": drops, "gains": gains, "p": p}


def plot_over_training(rows_by_run: dict[str, list[dict[str, Any]]], path: str | Path) -> Path:
    """One panel per run: each class's slow-point speed q (log scale) over training; dashed: a new stage.

    Saved as PNG and, beside it, PDF and SVG.
    """
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(7.0, 0.6 + 2.2 * len(rows_by_run)), layout="constrained")
    axes = fig.subplots(len(rows_by_run), 1, squeeze=False)[:, 0]
    for ax, (name, rows) in zip(axes, rows_by_run.items(), strict=True):
        steps = [r["step"] for r in rows]
        for c in range(len(rows[0]["speeds"])):
            ax.plot(steps, [r["speeds"][c] for r in rows], marker="o", ms=3, lw=1, color=f"C{c}", label=f"digit {c}")
        for a, b in itertools.pairwise(rows):
            if (a["classes"], a["window"]) != (b["classes"], b["window"]):
                ax.axvline(b["step"], color="0.6", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlim(min(steps) - 0.02 * (max(steps) - min(steps) + 1), max(steps) * 1.02 + 1)
        ax.set_title(f"{name}: dashed lines mark checkpoints at a new curriculum stage", fontsize=8)
        ax.set_ylabel("slow-point speed q")
    axes[-1].set_xlabel("training step")
    axes[0].legend(ncol=5, fontsize=6, frameon=False, title="class", title_fontsize=6)
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".png", ".pdf", ".svg"):
        fig.savefig(path.with_suffix(suffix), dpi=150)
    return path


__all__ = ["class_speeds_over_training", "drop_when_classes_added", "plot_over_training"]
