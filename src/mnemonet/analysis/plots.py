"""Figures of the analysis: PCA trajectories, slow points, eigenvalues, speed vs accuracy, accuracy vs delay, curves.

Every function builds a :class:`matplotlib.figure.Figure` directly, never through pyplot: no global
figure state, no display backend to choose (PNGs render with Agg on any headless machine, and the user's
notebook backend is left alone). Each returns its figure and also writes it as a PNG when given a path.
Classes get the same colour in every figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter
from torch import Tensor

from mnemonet.analysis.pca import PCA
from mnemonet.analysis.slow_points import SlowPoints
from mnemonet.analysis.speed import speed_vs_accuracy
from mnemonet.files import read_metrics


def _np(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def class_color(c: int) -> tuple[float, float, float, float]:
    """The colour of class ``c`` (tab10, then tab20 past 10 classes)."""
    cmap = colormaps["tab10"] if c < 10 else colormaps["tab20"]
    return cmap(c % cmap.N)


VECTOR_FORMATS = ("pdf", "svg")  # written beside every PNG, for papers


def save_figure(fig: Figure, path: str | Path | None, dpi: int = 150, vector: bool = True) -> Figure:
    """Write ``fig`` as a PNG at ``path`` (folders created) and, with ``vector``, the same figure as PDF and SVG
    beside it (same stem), at the figure's own size in inches; returns ``fig``."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, format="png", bbox_inches="tight")
        for fmt in VECTOR_FORMATS if vector else ():
            fig.savefig(path.with_suffix(f".{fmt}"), format=fmt, bbox_inches="tight")
    return fig


def _axes(fig: Figure, dims: int):
    if dims not in (2, 3):
        raise ValueError(f"dims: expected 2 or 3, got {dims!r}")
    return fig.add_subplot(111, projection="3d" if dims == 3 else None)


def _check_projected(projected: Any, dims: int, name: str) -> np.ndarray:
    if dims not in (2, 3):
        raise ValueError(f"dims: expected 2 or 3, got {dims!r}")
    z = _np(projected)
    if z.ndim != 3 or z.shape[-1] < dims:
        raise ValueError(f"{name}: expected shape (B, T, k) with k >= {dims}, got {z.shape}")
    return z


def plot_pca_trajectories(
    projected: Tensor,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    dims: int = 2,
    end_points: bool = True,
    max_trials: int | None = 200,
    title: str = "State trajectories (PCA)",
    explained: Tensor | None = None,
    path: str | Path | None = None,
    ax: Any = None,
) -> Figure:
    """Trajectories in principal-component space, coloured by class, end points marked.

    Args:
        projected: `[B, T, k]` trajectories projected by :meth:`PCA.transform` (k >= dims).
        labels: `[B]` classes, or None (one colour).
        mask: `[B, T]` bool steps to draw (e.g. real steps, or the delay); None for all.
        dims: 2 or 3.
        end_points: mark each trajectory's last drawn step.
        max_trials: draw at most this many trials (the first ones), None for all.
        title: axes title.
        explained: `[k]` explained-variance ratios for the axis labels, or None.
        path: PNG path, or None.
        ax: draw into these axes instead of a new figure.
    """
    z = _check_projected(projected, dims, "projected")
    B, T = z.shape[:2]
    m = np.ones((B, T), dtype=bool) if mask is None else _np(mask).astype(bool)
    if m.shape != (B, T):
        raise ValueError(f"mask: expected shape ({B}, {T}), got {m.shape}")
    lab = None if labels is None else _np(labels).astype(int)
    if lab is not None and lab.shape != (B,):
        raise ValueError(f"labels: expected shape ({B},), got {lab.shape}")
    if ax is None:
        fig = Figure(figsize=(6, 5))
        ax = _axes(fig, dims)
    else:
        fig = ax.figure
    n = B if max_trials is None else min(B, max_trials)
    seen: set[int] = set()
    for b in range(n):
        pts = z[b, m[b], :dims]  # (T_b, dims)
        if pts.shape[0] == 0:
            continue
        c = -1 if lab is None else int(lab[b])
        color = "0.3" if c < 0 else class_color(c)
        seen.add(c)
        ax.plot(*pts.T, color=color, lw=0.6, alpha=0.5)
        if end_points:
            ax.scatter(*pts[-1][:, None], color=color, s=14, edgecolors="k", linewidths=0.3, zorder=3)
    _label_axes(ax, dims, explained)
    ax.set_title(title)
    _class_legend(ax, sorted(seen - {-1}))
    return save_figure(fig, path)


def _class_legend(ax: Any, classes: Sequence[int]) -> None:
    """A legend with one opaque entry per class, in class order."""
    if not classes:
        return
    handles = [Line2D([], [], color=class_color(c), lw=2, label=f"class {c}") for c in classes]
    ax.legend(handles=handles, fontsize=7, loc="best")


def _label_axes(ax: Any, dims: int, explained: Tensor | None) -> None:
    ev = None if explained is None else _np(explained)
    names = []
    for i in range(dims):
        pct = "" if ev is None or i >= len(ev) else f" ({100 * ev[i]:.0f}%)"
        names.append(f"PC{i + 1}{pct}")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if dims == 3:
        ax.set_zlabel(names[2])


def plot_slow_points(
    pca: PCA,
    points: SlowPoints,
    trajectories: Tensor | None = None,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    dims: int = 2,
    title: str = "Slow points over trajectories (PCA)",
    path: str | Path | None = None,
) -> Figure:
    """Slow points in PCA space over faint trajectories: filled = stable, open = unstable, size ∝ slowness.

    Args:
        pca: a fitted :class:`PCA` (k >= dims).
        points: slow points (with eigenvalues for the stable/unstable marks; otherwise all filled).
        trajectories: `[B, T, S]` flat states drawn underneath, or None.
        labels: `[B]` trial classes for the trajectories.
        mask: `[B, T]` steps of the trajectories to draw.
        dims: 2 or 3.
        title: axes title.
        path: PNG path, or None.
    """
    fig = Figure(figsize=(6, 5))
    ax = _axes(fig, dims)
    if trajectories is not None:
        plot_pca_trajectories(pca.transform(trajectories), labels, mask, dims, end_points=False, ax=ax, title=title)
    if len(points):
        z = _np(pca.transform(points.states.to(torch.float64)))[:, :dims]  # (K, dims)
        stable = np.ones(len(points), dtype=bool) if points.eigenvalues is None else _np(points.is_stable())
        q = _np(points.speeds).astype(float)
        size = 30 + 50 * (np.log10(q.max() + 1e-30) - np.log10(q + 1e-30)) / max(np.ptp(np.log10(q + 1e-30)), 1e-9)
        labels_k = [None] * len(points) if points.labels is None else [int(c) for c in _np(points.labels)]
        colors = ["k" if c is None else class_color(c) for c in labels_k]
        for i in range(len(points)):
            face = colors[i] if stable[i] else "none"
            ax.scatter(*z[i][:, None], s=size[i], marker="X", facecolors=face, edgecolors="k", linewidths=1.0, zorder=5)
    marks = [
        Line2D([], [], ls="", marker="X", ms=8, mfc="k", mec="k", label="stable point"),
        Line2D([], [], ls="", marker="X", ms=8, mfc="none", mec="k", label="marginal or unstable point"),
    ]
    old = ax.get_legend()
    if old is not None:
        ax.add_artist(old)  # keep the class legend of the trajectories
    ax.legend(handles=marks, fontsize=7, loc="lower right", title="larger X: slower", title_fontsize=7)
    _label_axes(ax, dims, pca.explained_variance_ratio)
    ax.set_title(f"{title}\n{len(points)} points", fontsize=9)
    return save_figure(fig, path)


def plot_eigenvalues(points: SlowPoints, title: str = "Jacobian eigenvalues at slow points", path=None) -> Figure:
    """Eigenvalues of dF/dh at every slow point in the complex plane, with the unit circle (discrete time)."""
    if points.eigenvalues is None:
        raise ValueError("points: no eigenvalues; use SlowPoints.compute_jacobians(model) first")
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot(111)
    theta = np.linspace(0, 2 * math.pi, 256)
    ax.plot(np.cos(theta), np.sin(theta), color="0.5", lw=0.8, ls="--", label="unit circle |λ| = 1")
    eig = _np(points.eigenvalues)
    seen: set[int] = set()
    for i in range(len(points)):
        c = None if points.labels is None else int(points.labels[i])
        color = "k" if c is None else class_color(c)
        label = None
        if i == 0 and c is None:
            label = "eigenvalues of dF/dh"
        elif c is not None and c not in seen:
            label, _ = f"class {c}", seen.add(c)
        ax.scatter(eig[i].real, eig[i].imag, s=10, color=color, alpha=0.7, label=label)
    ax.set_aspect("equal")
    ax.set_xlabel("real part of eigenvalue λ")
    ax.set_ylabel("imaginary part of eigenvalue λ")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_speed_vs_accuracy(
    speeds: Tensor | Sequence[float],
    accuracies: Tensor | Sequence[float],
    classes: Tensor | Sequence[int] | None = None,
    rho: float | None = None,
    p: float | None = None,
    log_speed: bool = True,
    title: str = "Slow-point speed vs accuracy at long delays",
    path: str | Path | None = None,
) -> Figure:
    """Per-class speed q against per-class accuracy; Spearman ρ (and p) in the title.

    Args:
        speeds: `[C]` per-class slow-point speeds.
        accuracies: `[C]` per-class accuracies.
        classes: `[C]` class ids for colours and annotations (default 0..C−1).
        rho, p: the rank correlation; computed with :func:`speed_vs_accuracy` when None.
        log_speed: log-scale speed axis.
        title: title (ρ and p appended).
        path: PNG path, or None.
    """
    q = _np(speeds).astype(float).ravel()
    acc = _np(accuracies).astype(float).ravel()
    if q.shape != acc.shape:
        raise ValueError(f"speeds, accuracies: expected the same length, got {q.shape[0]} and {acc.shape[0]}")
    cls = np.arange(len(q)) if classes is None else _np(classes).astype(int).ravel()
    if cls.shape != q.shape:
        raise ValueError(f"classes: expected {q.shape[0]} class ids, got {cls.shape[0]}")
    if rho is None:
        rho, p = speed_vs_accuracy(q, acc)
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot(111)
    for c, x, y in zip(cls, q, acc, strict=True):
        ax.scatter(x, y, color=class_color(int(c)), s=40, edgecolors="k", linewidths=0.4, zorder=3, label=f"class {c}")
        ax.annotate(str(c), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
    if len(cls):
        ax.legend(fontsize=6, ncol=2, loc="best")
    if log_speed and np.all(q[np.isfinite(q)] > 0) and np.isfinite(q).any():
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide within one decade
    ax.set_xlabel("slow-point speed q = ½‖F(h, I) − h‖²")
    ax.set_ylabel("accuracy of the class (fraction correct)")
    p_text = "" if p is None or math.isnan(p) else f", p = {p:.3g}"
    ax.set_title(f"{title}\nSpearman ρ = {rho:.3f}{p_text}", fontsize=10)
    return save_figure(fig, path)


def plot_accuracy_vs_delay(
    runs: Mapping[str, tuple[Any, Any]],
    trained_max: float | None = None,
    chance: float | None = None,
    title: str = "Accuracy vs delay",
    path: str | Path | None = None,
) -> Figure:
    """Accuracy against delay for several runs on one plot; mean ± std bands over seeds.

    Args:
        runs: ``{label: (delays [n], accuracies)}`` with accuracies `[n]` (one run) or `[seeds, n]`
            (several seeds of one configuration, e.g. ``{"VoCu": ..., "DeCu": ..., "none": ...}``).
        trained_max: longest trained delay, drawn as a vertical line.
        chance: chance accuracy, drawn as a horizontal line.
        title: title.
        path: PNG path, or None.
    """
    if not runs:
        raise ValueError("runs: expected at least one run")
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot(111)
    for i, (label, (delays, accs)) in enumerate(runs.items()):
        d = _np(delays).astype(float).ravel()
        a = _np(accs).astype(float)
        a = a[None] if a.ndim == 1 else a  # (seeds, n)
        if a.ndim != 2 or a.shape[1] != d.shape[0]:
            n = d.shape[0]
            raise ValueError(f"runs[{label!r}]: expected accuracies of shape ({n},) or (seeds, {n}), got {a.shape}")
        color = class_color(i)
        mean = a.mean(0)
        ax.plot(d, mean, color=color, marker="o", ms=3, label=f"{label} (n={a.shape[0]})" if a.shape[0] > 1 else label)
        if a.shape[0] > 1:
            sd = a.std(0)
            ax.fill_between(d, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
    if trained_max is not None:
        ax.axvline(trained_max, color="0.4", ls="--", lw=0.8, label="longest trained delay")
    if chance is not None:
        ax.axhline(chance, color="0.6", ls=":", lw=0.8, label="chance")
    ax.set_xlabel("delay between image and trigger (steps)")
    ax.set_ylabel("test accuracy (fraction correct)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _words(key: str) -> str:
    """A metric key in words: ``valid_accuracy`` -> ``validation accuracy``."""
    words = {"valid": "validation", "lr": "learning rate", "bpc": "bits per character", "ppl": "perplexity"}
    return " ".join(words.get(w, w) for w in key.split("_"))


def plot_training_curves(
    records: Sequence[Mapping[str, Any]] | str | Path,
    keys: Sequence[str] | None = None,
    x_key: str = "step",
    title: str = "Training curves",
    path: str | Path | None = None,
) -> Figure:
    """One panel per metric against ``step``, from ``metrics.jsonl`` records.

    Records that carry ``train_curve`` (``[[step, mean training loss], ...]`` at the trainer's logging
    interval) draw it in the ``train_loss`` panel as a line, with the per-evaluation means as dots.

    Args:
        records: list of dicts with ``x_key`` and metric keys, or a path to a ``metrics.jsonl``.
        keys: metrics to draw (default: every numeric key but ``x_key``, in first-seen order).
        x_key: the abscissa key.
        title: figure title.
        path: PNG path, or None.
    """
    if isinstance(records, (str, Path)):
        records = read_metrics(records)
    rows = [r for r in records if isinstance(r.get(x_key), (int, float))]
    curve = [(float(s), float(v)) for r in rows for s, v in (r.get("train_curve") or ()) if math.isfinite(float(v))]
    if keys is None:
        keys = []
        for r in rows:
            for k, v in r.items():
                if k != x_key and k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool):
                    keys.append(k)
        if curve and "train_loss" not in keys:
            keys.insert(0, "train_loss")
    if not keys:
        raise ValueError(f"records: expected records with {x_key!r} and at least one numeric metric")
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(4 * cols, 3 * nrows))
    for i, k in enumerate(keys):
        ax = fig.add_subplot(nrows, cols, i + 1)
        pts = [(r[x_key], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
        name = _words(k)
        logged = k == "train_loss" and curve and x_key == "step"  # the curve at the logging interval
        if logged:
            cx, cy = zip(*curve, strict=True)
            ax.plot(cx, cy, lw=0.8, alpha=0.8, label="training loss (logging interval)")
        if pts:
            xs, ys = zip(*pts, strict=True)
            if logged:  # the per-evaluation means as dots over the curve
                ax.plot(xs, ys, ls="none", marker=".", label="mean since the last evaluation")
            else:
                ax.plot(xs, ys, lw=1.0, marker="." if len(xs) < 50 else None, label=name)
        if pts or logged:
            ax.legend(fontsize=7, loc="best")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("training step" if x_key == "step" else _words(x_key), fontsize=8)
        ax.set_ylabel(name, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)
