"""What the finder's labels mean: converged means converged, out-of-bounds points are flagged, the float64
polish reaches q ≤ 1e-20, forward runs find a GRU's attractor, and a line attractor is marginal in any dtype."""

import pytest
import torch
from analysis_toy_models import LinearCell, linear_model

import mnemonet
from mnemonet.analysis.dynamics import speed, transition
from mnemonet.analysis.slow_points import (
    SlowPoints,
    default_tolerances,
    find_attractors,
    find_slow_points,
    polish_fixed_points,
)
from mnemonet.models.recurrent import Recurrent

D64 = torch.float64


def _gru(seed: int = 0, hidden: int = 20) -> torch.nn.Module:
    """A small GRU with one stable fixed point under a constant input (contracting recurrent weights)."""
    torch.manual_seed(seed)
    model = mnemonet.build("gru", input_size=3, hidden_size=hidden).eval()
    with torch.no_grad():
        model.cell.weight_hh.mul_(0.5)
    return model


def test_gru_forward_attractor_is_found_and_polished_below_1e_20():
    model = _gru()
    x = torch.tensor([0.3, -0.2, 0.1])
    starts = torch.rand(16, model.state_size) * 2 - 1
    att = find_attractors(model, x, starts, steps=100)
    assert len(att.points) == 1 and att.basin.tolist() == [0] * 16
    assert att.points.reasons == ["converged"] and float(att.points.speeds[0]) <= 1e-20
    assert att.points.stability() == ["stable"]
    # independent check: 300 plain float64 steps from zero land on the same point
    m64 = _gru().double()
    h = torch.zeros(1, model.state_size, dtype=D64)
    with torch.no_grad():
        for _ in range(300):
            h = transition(m64, h, x.double())
    assert float((h[0] - att.points.states[0]).abs().max()) < 1e-12
    share = att.basin_share(torch.arange(16) % 4)
    assert share.shape == (1, 4) and share.sum(0).tolist() == [1.0] * 4


def test_polish_takes_starts_near_the_fixed_point_to_q_below_1e_20():
    model = _gru(1)
    x = torch.tensor([0.5, 0.0, -0.5])
    fixed = find_attractors(model, x, torch.zeros(1, model.state_size), steps=300).points.states
    near = fixed.float() + 0.01 * torch.randn(16, model.state_size)
    _, q, ok, used = polish_fixed_points(model, x, near)
    assert bool(ok.all()) and float(q.max()) <= 1e-20 and int(used.max()) <= 30
    found = find_slow_points(model, x, near, unique_tol=None)
    assert found.reasons == ["converged"] * 16 and float(found.speeds.max()) <= 1e-20


def test_a_point_still_moving_is_never_marked_converged():
    """h ← (1 − 1e-3) h: q decays slowly along the way to 0; every step of Adam still lowers it."""
    model = linear_model(torch.eye(2) * (1 - 1e-3))
    x0 = torch.tensor([[10.0, -10.0], [7.0, 3.0]])
    sp = find_slow_points(model, torch.zeros(1), x0, max_steps=300, polish=False, unique_tol=None)
    tol_q, _ = default_tolerances(torch.float32, 2)
    assert sp.reasons == ["max_steps", "max_steps"] and not bool(sp.converged.any())
    assert bool((sp.speeds > 1e3 * tol_q).all())
    q0 = speed(model, x0, torch.zeros(1)).detach()
    assert bool((sp.speeds < q0[sp.origin]).all())  # it did move downhill all along
    assert sp.iterations.tolist() == [300, 300]


class _BoundedLinear(LinearCell):
    state_limits = {"h": 1.0}  # noqa: RUF012 (a test double declaring bounds like a GRU)


def test_points_that_leave_the_bounds_are_flagged():
    """h ← 0.5 h + x with x = 1: the only fixed point, h = 2, lies outside the declared |h| ≤ 1."""
    model = Recurrent(_BoundedLinear(torch.tensor([[0.5]]), torch.tensor([[1.0]])))
    assert model.state_bounds()[1].tolist() == [1.0]
    x0 = torch.tensor([[0.0], [0.5]])
    for mode in ("project", "flag"):
        sp = find_slow_points(model, torch.ones(1), x0, unique_tol=None, bounds=mode, pinned_steps=20)
        assert sp.reasons == ["out_of_bounds", "out_of_bounds"], mode
        assert not bool(sp.in_bounds.any())
    free = find_slow_points(model, torch.ones(1), x0, unique_tol=None, bounds="ignore", max_steps=20)
    assert free.reasons == ["converged", "converged"] and torch.allclose(
        free.states, torch.full((2, 1), 2.0, dtype=D64)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_planted_line_attractor_is_marginal_in_float32_and_float64(dtype):
    labels = []
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=D64))
        A = Q @ torch.diag(torch.tensor([1.0, 0.5, 0.4, 0.3, -0.2, 0.1], dtype=D64)) @ Q.T  # a line along Q[:, 0]
        model = linear_model(A.to(dtype))
        states = (torch.linspace(-1, 1, 3, dtype=D64)[:, None] * Q[:, 0]).to(dtype)  # (3, 6) on the line
        sp = SlowPoints(states, torch.zeros(3, dtype=dtype), torch.ones(3, dtype=torch.bool), torch.arange(3))
        sp = sp.compute_jacobians(model, torch.zeros(1, dtype=dtype))
        labels += sp.stability()
        assert not bool(sp.is_stable().any())
    assert set(labels) == {"marginal"}


def test_stop_reasons_and_iterations_round_trip(tmp_path):
    model = _gru(2, hidden=6)
    sp = find_slow_points(model, torch.zeros(3), torch.rand(5, 6) - 0.5, max_steps=50, polish=False)
    back = SlowPoints.load(sp.save(tmp_path / "sp.npz"))
    assert back.reasons == sp.reasons and back.iterations.tolist() == sp.iterations.tolist()
    assert sum(sp.counts().values()) == len(sp)
