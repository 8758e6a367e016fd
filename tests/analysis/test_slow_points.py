"""Slow-point finder against systems with known fixed points; the SlowPoints container."""

import math

import numpy as np
import pytest
import torch
from analysis_toy_models import linear_model, tanh_model

import mnemonet
from mnemonet.analysis.dynamics import transition
from mnemonet.analysis.slow_points import SlowPoints, eigenvalues_by_magnitude, find_slow_points, outliers

D64 = torch.float64


def _h_star(w: float) -> float:
    """The positive root of h = tanh(w h), by plain fixed-point iteration (converges: stable point)."""
    h = 1.0
    for _ in range(2000):
        h = math.tanh(w * h)
    return h


def test_stable_linear_rnn_has_one_fixed_point_at_zero_with_the_eigenvalues_of_a():
    A = torch.tensor([[0.5, 0.3, 0.0], [-0.3, 0.5, 0.1], [0.0, 0.2, -0.4]], dtype=D64)
    model = linear_model(A)
    x0 = torch.randn(12, 3, dtype=D64)
    sp = find_slow_points(model, torch.zeros(1, dtype=D64), x0)
    assert len(sp) == 1
    torch.testing.assert_close(sp.states[0], torch.zeros(3, dtype=D64), atol=1e-5, rtol=0)
    assert bool(sp.converged.all()) and float(sp.speeds.max()) < 1e-10
    want = torch.linalg.eigvals(A)
    want = want[torch.argsort(want.abs(), descending=True)]
    torch.testing.assert_close(sp.jacobians[0], A)
    torch.testing.assert_close(torch.sort(sp.eigenvalues[0].real).values, torch.sort(want.real).values)
    torch.testing.assert_close(sp.eigenvalues[0].abs(), want.abs())
    assert sp.is_stable().tolist() == [True]


def test_bistable_tanh_unit_has_three_fixed_points():
    w = 2.0
    h_star = _h_star(w)
    model = tanh_model(torch.tensor([[w]], dtype=D64))
    x0 = torch.linspace(-2.0, 2.0, 17, dtype=D64)[:, None]
    sp = find_slow_points(model, torch.zeros(1, 1, dtype=D64), x0)
    order = torch.argsort(sp.states[:, 0])
    sp = sp[order]
    torch.testing.assert_close(sp.states[:, 0], torch.tensor([-h_star, 0.0, h_star], dtype=D64), atol=1e-5, rtol=0)
    assert sp.is_stable().tolist() == [True, False, True]
    # dF/dh = w (1 - tanh²(w h)) = w (1 - h²) at a fixed point
    lam = torch.tensor([w * (1 - h_star**2), w, w * (1 - h_star**2)], dtype=D64)
    torch.testing.assert_close(sp.eigenvalues[:, 0].real, lam, atol=1e-4, rtol=0)
    assert bool(sp.converged.all())


def test_line_attractor_points_land_on_the_line():
    # A = diag(1, 0.5): every point of the first axis is fixed, eigenvalues 1 (along the line) and 0.5.
    # q = ⅛ h₂² has no gradient along the line, so each start lands straight below itself: (h₁, 0)
    model = linear_model(torch.diag(torch.tensor([1.0, 0.5], dtype=D64)))
    x0 = torch.randn(6, 2, dtype=D64)
    sp = find_slow_points(model, torch.zeros(1, dtype=D64), x0, unique_tol=None)
    assert len(sp) == 6 and bool(sp.converged.all())
    want = torch.stack([x0[:, 0], torch.zeros(6, dtype=D64)], 1)
    torch.testing.assert_close(sp.states, want[sp.origin], atol=1e-5, rtol=0)
    torch.testing.assert_close(sp.eigenvalues.abs(), torch.tensor([[1.0, 0.5]], dtype=D64).expand(6, 2))
    assert not bool(sp.is_stable().any())  # marginal direction: not stable
    # the same line rotated: points end on span(u) (any point of it), with the same spectrum
    c, s = math.cos(0.6), math.sin(0.6)
    R = torch.tensor([[c, -s], [s, c]], dtype=D64)
    model = linear_model(R @ torch.diag(torch.tensor([1.0, 0.5], dtype=D64)) @ R.T)
    sp = find_slow_points(model, torch.zeros(1, dtype=D64), x0, unique_tol=None)
    assert len(sp) == 6 and bool(sp.converged.all())
    torch.testing.assert_close(sp.states @ R[:, 1], torch.zeros(6, dtype=D64), atol=1e-5, rtol=0)
    torch.testing.assert_close(sp.eigenvalues.abs(), torch.tensor([[1.0, 0.5]], dtype=D64).expand(6, 2))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_finder_converges_on_lstm_and_gru_states(name):
    model = mnemonet.build(name, input_size=3, hidden_size=5).eval()
    x = torch.full((3,), 0.1)
    x0 = 0.5 * torch.randn(8, model.state_size)
    sp = find_slow_points(model, x, x0)
    assert len(sp) >= 1 and bool(sp.converged.all())
    # the points are fixed points of the model's own step, checked independently of the finder
    with torch.no_grad():
        step = transition(model, sp.states.float(), x)  # states are float64 after the polish
    assert float((step - sp.states.float()).abs().max()) < 1e-4
    assert sp.jacobians.shape == (len(sp), model.state_size, model.state_size)
    assert sp.eigenvalues.shape == (len(sp), model.state_size)


def test_step_budget_leaves_far_points_unconverged():
    model = linear_model(torch.tensor([[0.5]], dtype=D64))
    x0 = torch.tensor([[3.0], [0.0]], dtype=D64)
    sp = find_slow_points(model, torch.zeros(1, dtype=D64), x0, max_steps=2, polish=False)
    by_origin = dict(zip(sp.origin.tolist(), sp.reasons, strict=True))
    assert by_origin == {0: "max_steps", 1: "converged"}
    assert sp.iterations.tolist() == [0, 2]  # in speed order: 1 converged at once, 0 used the budget
    polished = find_slow_points(model, torch.zeros(1, dtype=D64), x0, max_steps=2, unique_tol=None)
    assert polished.reasons == ["converged", "converged"] and float(polished.speeds.max()) < 1e-20


def test_outlier_rule():
    x0 = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # centroid (1, 0), radius 1
    pts = torch.tensor([[1.0, 9.0], [1.0, 11.0], [float("nan"), 0.0]])
    assert outliers(pts, x0, scale=10.0).tolist() == [False, True, True]
    # a single initial state: only non-finite points are dropped
    assert outliers(pts, x0[:1], scale=10.0).tolist() == [False, False, True]
    with pytest.raises(ValueError, match="scale"):
        outliers(pts, x0, scale=0.0)


def _container(states, speeds, converged):
    K = len(speeds)
    return SlowPoints(
        torch.tensor(states, dtype=D64),
        torch.tensor(speeds, dtype=D64),
        torch.tensor(converged),
        torch.arange(K),
    )


def test_unique_keeps_the_slowest_in_bounds_member_of_each_cluster():
    sp = _container(
        [[0.0, 0.0], [0.0, 5e-4], [1.0, 1.0], [1.0, 1.0 + 1e-4]], [1e-6, 1e-9, 1e-3, 1e-8], [True] * 3 + [False]
    )
    u = sp.unique(tol=1e-3)
    assert u.origin.tolist() == [1, 3]  # 1 (slower than 0); 3 (slower than 2, converged or not)
    sp.stop_reason[1] = 3  # out of bounds: never kept over an in-bounds point
    assert sp.unique(tol=1e-3).origin.tolist() == [3, 0]
    assert len(sp.unique(tol=0.0)) == 4
    with pytest.raises(ValueError, match="tol"):
        sp.unique(-1.0)


def test_container_fields_share_axis_0():
    sp = _container([[0.0], [1.0], [2.0]], [0.1, 0.2, 0.3], [True, False, True])
    sub = sp[torch.tensor([True, False, True])]
    assert sub.origin.tolist() == [0, 2] and sub.speeds.tolist() == [0.1, 0.3]
    assert len(sp[1]) == 1
    with pytest.raises(ValueError, match="speeds"):
        SlowPoints(torch.zeros(3, 2), torch.zeros(2), torch.ones(3, dtype=torch.bool), torch.arange(3))
    with pytest.raises(ValueError, match="eigenvalues"):
        sp.is_stable()


def test_save_and_load_round_trip_without_pickle(tmp_path):
    model = tanh_model(torch.tensor([[2.0]], dtype=D64))
    sp = find_slow_points(model, torch.zeros(1, dtype=D64), torch.linspace(-2, 2, 9, dtype=D64)[:, None])
    path = sp.save(tmp_path / "sub" / "slow_points.npz")
    back = SlowPoints.load(path)
    for f in ("states", "speeds", "converged", "origin", "jacobians", "eigenvalues", "input"):
        torch.testing.assert_close(getattr(back, f), getattr(sp, f))
    assert back.labels is None and back.eigenvalues.is_complex()
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    bad = tmp_path / "bad.npz"
    np.savez(bad, states=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        SlowPoints.load(bad)
    np.savez(bad, states=np.zeros((2, 1)))
    with pytest.raises(ValueError, match="missing"):
        SlowPoints.load(bad)


def test_eigenvalues_are_sorted_by_magnitude():
    J = torch.diag(torch.tensor([0.1, -2.0, 0.5], dtype=D64))[None]
    assert eigenvalues_by_magnitude(J)[0].real.tolist() == [-2.0, 0.5, 0.1]


def test_bad_arguments_raise():
    model = linear_model(torch.eye(2, dtype=D64) * 0.5)
    x0 = torch.zeros(3, 2, dtype=D64)
    with pytest.raises(ValueError, match="input"):
        find_slow_points(model, torch.zeros(3, 1, dtype=D64), x0)
    with pytest.raises(ValueError, match="initial_states"):
        find_slow_points(model, torch.zeros(1, dtype=D64), torch.zeros(3, 4, dtype=D64))
    with pytest.raises(ValueError, match="max_steps"):
        find_slow_points(model, torch.zeros(1, dtype=D64), x0, max_steps=0)
    with pytest.raises(ValueError, match="lr"):
        find_slow_points(model, torch.zeros(1, dtype=D64), x0, lr=-1.0)
