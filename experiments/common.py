"""Shared by the experiment scripts: train arms over seeds (resumable), summarise, tabulate, plot.

Each run lives in ``<root>/<arm>-s<seed>``; a finished run has ``done.json`` (final metrics and wall time),
so re-running a script skips finished runs and resumes killed ones from their last checkpoint.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from mnemonet.app import read_metrics, train
from mnemonet.app.run import read_run_config
from mnemonet.training import load_config
from mnemonet.training.checkpoint import atomic_write_text


def run_arm(preset: str, arm: str, seed: int, root: Path, overrides: Sequence[str] = (), threads: int = 1) -> dict:
    """Train ``preset`` with ``overrides`` and ``trainer.seed=seed`` in ``root/<arm>-s<seed>`` unless done.

    Returns:
        The run's ``done.json`` record: ``{"run": path, "seconds": wall time, "last": last metrics record}``.
    """
    out = Path(root) / f"{arm}-s{seed}"
    done = out / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    start = time.perf_counter()
    if (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("*.json")):
        result, _ = train(read_run_config(out), resume=out, threads=threads, progress="off")
    else:
        config = load_config(preset, [*overrides, f"trainer.seed={seed}"])
        result, _ = train(config, out=out, threads=threads, progress="off", source=arm)
    record = {"run": str(out), "seconds": time.perf_counter() - start, "last": result.last, "step": result.step}
    atomic_write_text(done, json.dumps(record, indent=1))
    return record


def report_paths(name: str, quick: bool) -> tuple[Path, Path, Path]:
    """(run root, report, figure folder) of experiment ``name``: under ``runs/experiments`` and ``docs/results``,
    or all under ``runs/experiments/<name>-quick`` for a ``--quick`` smoke run."""
    root = Path(f"runs/experiments/{name}-quick" if quick else f"runs/experiments/{name}")
    doc = root / f"{name}.md" if quick else Path(f"docs/results/{name}.md")
    return root, doc, doc.parent / name


def cached(path: Path, key: object, compute: Callable[[], object]) -> object:
    """``compute()`` cached in ``path`` as JSON, recomputed when the settings ``key`` changed."""
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("key") == key:
            return data["value"]
    value = compute()
    atomic_write_text(path, json.dumps({"key": key, "value": value}, indent=1))
    return value


def num_params(model: torch.nn.Module) -> int:
    """Trainable parameters, readout included."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    vals = list(values)
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def fmt(values: Iterable[float], scale: float = 100.0, digits: int = 1) -> str:
    """``"mean ± std"`` of ``values * scale`` (percentages by default)."""
    m, s = mean_std(v * scale for v in values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def curves(run_dirs: Iterable[str | Path], metric: str) -> tuple[list[int], list[list[float]]]:
    """Evaluation steps and, per run, the metric's values at those steps (runs cut to the shortest)."""
    series = []
    for d in run_dirs:
        recs = [r for r in read_metrics(d) if metric in r]
        series.append(([int(r["step"]) for r in recs], [float(r[metric]) for r in recs]))
    n = min(len(s[0]) for s in series)
    return series[0][0][:n], [s[1][:n] for s in series]


def plot_curves(arms: dict[str, list[str | Path]], metric: str, path: Path, ylabel: str | None = None) -> Path:
    """Mean ± std learning curves of ``metric``, one line per arm; saved as PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for label, dirs in arms.items():
        steps, values = curves(dirs, metric)
        v = torch.tensor(values, dtype=torch.float64)
        m, s = v.mean(0), (v.std(0) if v.shape[0] > 1 else torch.zeros_like(v[0]))
        ax.plot(steps, m, label=f"{label} (n={v.shape[0]})")
        ax.fill_between(steps, m - s, m + s, alpha=0.2)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel or metric)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    return path
