"""Per-class slow points, per-class accuracy and the rank correlation between speed and accuracy."""

import itertools
import math

import pytest
import scipy.stats
import torch
from analysis_toy_models import tanh_model

from mnemonet.analysis.slow_points import SlowPoints
from mnemonet.analysis.speed import (
    class_slow_points,
    per_class_accuracy,
    rankdata,
    slowest_per_class,
    spearman,
    speed_vs_accuracy,
)

D64 = torch.float64


def test_ranks_and_spearman_match_scipy():
    x = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0]
    y = [2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0, 8.0, 2.0]
    torch.testing.assert_close(rankdata(x), torch.tensor(scipy.stats.rankdata(x), dtype=D64))
    assert spearman(x, y) == pytest.approx(scipy.stats.spearmanr(x, y).statistic, abs=1e-12)


def _rho_plain(x, y):
    """Spearman by the textbook formula 1 - 6 Σd² / (n(n² - 1)) (no ties)."""
    n = len(x)
    rx = {v: i for i, v in enumerate(sorted(x))}
    ry = {v: i for i, v in enumerate(sorted(y))}
    d2 = sum((rx[a] - ry[b]) ** 2 for a, b in zip(x, y, strict=True))
    return 1 - 6 * d2 / (n * (n * n - 1))


def test_exact_permutation_p_value():
    # n = 3, perfectly anti-monotone: ρ = -1, and 2 of the 3! orderings reach |ρ| = 1
    rho, p = speed_vs_accuracy([1e-6, 1e-4, 1e-2], [0.9, 0.5, 0.1])
    assert rho == pytest.approx(-1.0) and p == pytest.approx(1 / 3)
    # n = 6: against a brute-force enumeration with the textbook formula
    x = [0.3, 0.1, 0.7, 0.2, 0.9, 0.5]
    y = [0.4, 0.8, 0.1, 0.6, 0.3, 0.5]
    rho0 = _rho_plain(x, y)
    hits = sum(abs(_rho_plain(x, list(perm))) >= abs(rho0) - 1e-12 for perm in itertools.permutations(y))
    rho, p = speed_vs_accuracy(x, y)
    assert rho == pytest.approx(rho0) and p == pytest.approx(hits / math.factorial(6))


def test_monte_carlo_p_value_for_many_classes():
    speeds = torch.logspace(-8, -2, 10)
    rho, p = speed_vs_accuracy(speeds, 1 - torch.linspace(0, 0.8, 10), permutations=2000)
    assert rho == pytest.approx(-1.0) and p == pytest.approx(1 / 2001)  # no random ordering reaches |ρ| = 1
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(10, generator=g), torch.randn(10, generator=g)
    _, p_null = speed_vs_accuracy(a, b, permutations=4000)
    assert 0.05 < p_null <= 1.0


def test_nan_pairs_are_dropped_and_degenerate_cases_give_nan():
    rho, p = speed_vs_accuracy([1.0, 2.0, float("nan"), 3.0], [0.9, 0.5, 0.7, 0.1])
    assert rho == pytest.approx(-1.0) and p == pytest.approx(1 / 3)
    assert all(math.isnan(v) for v in speed_vs_accuracy([1.0, 2.0], [0.5, 0.4]))
    assert all(math.isnan(v) for v in speed_vs_accuracy([1.0, 2.0, 3.0], [0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="speeds, accuracies"):
        speed_vs_accuracy([1.0, 2.0, 3.0], [0.5, 0.4])


def test_per_class_accuracy_by_hand():
    labels = torch.tensor([0, 0, 1, 1, 1, 3])
    preds = torch.tensor([0, 1, 1, 1, 0, 3])
    acc = per_class_accuracy(preds, labels, 4)
    assert acc[[0, 1, 3]].tolist() == [0.5, pytest.approx(2 / 3), 1.0] and math.isnan(acc[2])
    with pytest.raises(ValueError, match="labels"):
        per_class_accuracy(preds, labels, 3)


def test_class_slow_points_of_a_bistable_unit():
    # h ← tanh(2h): class 0 remembered at -h*, class 1 at +h*
    h_star = 0.9575040240772687
    model = tanh_model(torch.tensor([[2.0]], dtype=D64))
    g = torch.Generator().manual_seed(0)
    states = torch.cat([-0.8 - 0.3 * torch.rand(10, 1, generator=g), 0.8 + 0.3 * torch.rand(10, 1, generator=g)])
    labels = torch.tensor([0] * 10 + [1] * 10)
    sp = class_slow_points(model, torch.zeros(1), states.to(D64), labels, per_class=4, generator=g)
    assert sp.labels.tolist() == [0, 1]
    torch.testing.assert_close(sp.states[:, 0], torch.tensor([-h_star, h_star], dtype=D64), atol=1e-5, rtol=0)
    assert sp.is_stable().tolist() == [True, True] and bool(sp.converged.all())


def test_slowest_in_bounds_point_of_each_class_is_kept():
    speeds = [1e-3, 1e-6, 1e-5, 1e-2, 1e-4, 1e-9, 1e-12]
    converged = [True, False, True, False, False, True, False]
    labels = torch.tensor([0, 0, 0, 1, 1, 3, 4])
    pts = SlowPoints(
        torch.arange(7, dtype=D64)[:, None], torch.tensor(speeds, dtype=D64), torch.tensor(converged), torch.arange(7)
    )
    pts.stop_reason[0] = pts.stop_reason[6] = 3  # out of bounds
    kept = slowest_per_class(pts, labels)
    # class 0: 1e-6 (lowest q, converged or not); class 1: 1e-4; class 3: its only point; class 4: none in bounds
    assert kept.origin.tolist() == [1, 4, 5] and kept.labels.tolist() == [0, 1, 3]
    assert kept.reasons == ["max_steps", "max_steps", "converged"]
    with pytest.raises(ValueError, match="labels"):
        slowest_per_class(pts, labels[:5])


def test_class_slow_points_reject_bad_shapes():
    model = tanh_model(torch.eye(2, dtype=D64))
    with pytest.raises(ValueError, match="labels"):
        class_slow_points(model, torch.zeros(1), torch.zeros(4, 2, dtype=D64), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="states"):
        class_slow_points(model, torch.zeros(1), torch.zeros(4, 3, dtype=D64), torch.zeros(4, dtype=torch.int64))
