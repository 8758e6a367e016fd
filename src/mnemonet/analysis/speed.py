"""Per-class slow points and the paper's central observation: slower points, better memory.

Haviv, Rivkind & Barak (ICML 2019) associate each remembered class with one slow point near the
end-of-delay states of that class, and find that the speed q of that point predicts how well the class
is recalled after delays longer than those trained on. This file finds one slow point per class,
computes per-class accuracy, and measures the rank (Spearman) correlation between the two, with a
permutation-test p-value (scipy is not a dependency).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mnemonet._checks import check_positive, check_tensor
from mnemonet.analysis.slow_points import SlowPoints, find_slow_points
from mnemonet.analysis.trajectories import sample_rows

Model = Any


def class_slow_points(
    model: Model,
    input: Tensor,
    states: Tensor,
    labels: Tensor,
    *,
    per_class: int = 16,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
    compute_jacobians: bool = True,
    **finder_kwargs: Any,
) -> SlowPoints:
    """One slow point per class, found from that class's end-of-delay states.

    Rule: for each class present in ``labels``, the initial states are the class's mean state plus up
    to ``per_class - 1`` of its states drawn at random (plus Gaussian ``noise``). All classes run in one
    batched :func:`find_slow_points` call (outliers dropped, no merging). Each class keeps, among the
    in-bounds points grown from its own initial states, the one with the lowest q (its ``stop_reason``
    says whether it converged). A class none of whose points stayed in bounds is left out.

    Args:
        model: any model satisfying the contract.
        input: the constant input I, `[D]` or `[1, D]` (delayed recall: noise mean, trigger off).
        states: `[N, S]` flat states at the end of the delay.
        labels: `[N]` int64 class of each state.
        per_class: initial states per class (the class mean counts as one).
        noise: standard deviation of the noise added to the sampled states (not to the mean).
        generator: CPU generator for the sampling.
        compute_jacobians: also compute Jacobians and eigenvalues of the chosen points.
        **finder_kwargs: passed to :func:`find_slow_points` (``lr``, ``max_steps``, ``tol_q``, ...).

    Returns:
        :class:`SlowPoints` with ``labels`` set, one row per class, by increasing class.
    """
    check_tensor(states, "states", ("N", model.state_size))
    check_tensor(labels, "labels", (states.shape[0],), floating=False)
    check_positive(per_class, "per_class")
    for key in ("unique_tol", "compute_jacobians"):
        finder_kwargs.pop(key, None)
    labels = labels.to(torch.int64).cpu()
    states = states.detach().cpu()
    init, init_labels = [], []
    classes = torch.unique(labels).tolist()
    for c in classes:
        rows = states[labels == c]  # (N_c, S)
        chosen = [rows.mean(0, keepdim=True)]
        if per_class > 1:
            chosen.append(sample_rows(rows, min(per_class - 1, rows.shape[0]), noise, generator)[0])
        block = torch.cat(chosen)  # (n_c, S)
        init.append(block)
        init_labels.append(torch.full((block.shape[0],), c, dtype=torch.int64))
    x0 = torch.cat(init)  # (K, S)
    lab0 = torch.cat(init_labels)  # (K,)
    found = find_slow_points(model, input, x0, unique_tol=None, compute_jacobians=False, **finder_kwargs)
    picked = slowest_per_class(found, lab0[found.origin])
    if compute_jacobians and len(picked):
        picked = picked.compute_jacobians(model, t=finder_kwargs.get("t", 0))
    return picked


def slowest_per_class(points: SlowPoints, labels: Tensor) -> SlowPoints:
    """Keep one point per class: its in-bounds point with the lowest q (classes with none are left out).

    Args:
        points: K slow points.
        labels: `[K]` int64 class of each point.

    Returns:
        :class:`SlowPoints` with ``labels`` set, one row per class present, by increasing class.
    """
    check_tensor(labels, "labels", (len(points),), floating=False)
    labels = labels.long().cpu()
    keep = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero((labels == c) & points.in_bounds).flatten()
        if idx.numel():
            keep.append(int(idx[points[idx]._order()[0]]))
    kept = torch.as_tensor(keep, dtype=torch.int64)
    return dataclasses.replace(points[kept], labels=labels[kept])


def per_class_accuracy(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Fraction of correct predictions in each class.

    Args:
        predictions: `[N]` predicted classes.
        labels: `[N]` true classes in ``[0, num_classes)``.
        num_classes: C.

    Returns:
        `[C]` float64 accuracies, NaN for classes absent from ``labels``.
    """
    check_positive(num_classes, "num_classes")
    check_tensor(labels, "labels", ("N",), floating=False)
    check_tensor(predictions, "predictions", (labels.shape[0],), floating=False)
    labels = labels.long().cpu()
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels: expected classes in [0, {num_classes - 1}]")
    correct = (predictions.long().cpu() == labels).to(torch.float64)
    hits = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, labels, correct)
    counts = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, labels, torch.ones_like(correct))
    return torch.where(counts > 0, hits / counts.clamp_min(1), torch.full_like(hits, float("nan")))


def rankdata(values: Tensor | Sequence[float]) -> Tensor:
    """1-based ranks of `[n]` values, ties getting the average of their ranks (float64)."""
    x = torch.as_tensor(values, dtype=torch.float64).flatten()
    less = (x[None, :] < x[:, None]).sum(1).to(torch.float64)  # (n,) values strictly below each
    equal = (x[None, :] == x[:, None]).sum(1).to(torch.float64)  # (n,) ties, itself included
    return less + (equal + 1) / 2


def _pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of `[n]` a with each row of `[P, n]` b."""
    a = a - a.mean()
    b = b - b.mean(-1, keepdim=True)
    return (b @ a) / (a.norm() * b.norm(dim=-1))


def spearman(x: Tensor | Sequence[float], y: Tensor | Sequence[float]) -> float:
    """Spearman's rank correlation ρ: the Pearson correlation of the (tie-averaged) ranks; NaN if constant."""
    rx, ry = _paired_ranks(x, y)
    return float(_pearson(rx, ry[None])[0])


def _paired_ranks(x: Tensor | Sequence[float], y: Tensor | Sequence[float]) -> tuple[Tensor, Tensor]:
    x = torch.as_tensor(x, dtype=torch.float64).flatten()
    y = torch.as_tensor(y, dtype=torch.float64).flatten()
    if x.shape != y.shape:
        raise ValueError(f"x, y: expected the same number of values, got {x.numel()} and {y.numel()}")
    if x.numel() < 2:
        raise ValueError(f"x, y: expected at least 2 pairs, got {x.numel()}")
    return rankdata(x), rankdata(y)


def speed_vs_accuracy(
    speeds: Tensor | Sequence[float],
    accuracies: Tensor | Sequence[float],
    permutations: int = 10000,
    seed: int = 0,
) -> tuple[float, float]:
    """Spearman ρ between per-class slow-point speeds and per-class accuracies, with a two-sided p-value.

    The paper expects ρ < 0: slower points (small q), better memory. Pairs with a NaN are dropped.
    The p-value is a permutation test of ρ: the fraction of orderings of the accuracies whose |ρ| is at
    least the observed |ρ|. With n ≤ 8 pairs every ordering is enumerated (exact p); otherwise
    ``permutations`` random orderings are drawn (seeded) and p = (1 + hits) / (1 + permutations).

    Args:
        speeds: `[n]` per-class speeds q.
        accuracies: `[n]` per-class accuracies.
        permutations: random orderings when n > 8.
        seed: seed of the random orderings.

    Returns:
        ``(rho, p)``; both NaN when fewer than 3 valid pairs remain or a variable is constant.
    """
    check_positive(permutations, "permutations")
    x = torch.as_tensor(speeds, dtype=torch.float64).flatten()
    y = torch.as_tensor(accuracies, dtype=torch.float64).flatten()
    if x.shape != y.shape:
        raise ValueError(f"speeds, accuracies: expected the same number of values, got {x.numel()} and {y.numel()}")
    ok = torch.isfinite(x) & torch.isfinite(y)
    x, y = x[ok], y[ok]
    n = x.numel()
    if n < 3:
        return float("nan"), float("nan")
    rx, ry = rankdata(x), rankdata(y)
    rho = _pearson(rx, ry[None])[0]
    if not torch.isfinite(rho):
        return float("nan"), float("nan")
    if n <= 8:
        perms = torch.tensor(list(itertools.permutations(range(n))), dtype=torch.int64)  # (n!, n)
        total = math.factorial(n)
    else:
        g = torch.Generator().manual_seed(seed)
        perms = torch.argsort(torch.rand(permutations, n, generator=g), dim=1)  # (P, n)
        total = permutations
    null = _pearson(rx, ry[perms])  # (P,)
    hits = int((null.abs() >= rho.abs() - 1e-12).sum())
    p = hits / total if n <= 8 else (1 + hits) / (1 + total)
    return float(rho), float(p)
