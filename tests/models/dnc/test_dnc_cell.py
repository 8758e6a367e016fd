"""The DNC model: read-vector feedback, batch sizes, layouts, padding, state, controllers, fast paths, trace."""

import pytest
import torch

import mnemonet
import mnemonet.models.dnc  # registers "dnc"
from mnemonet import kernels
from mnemonet.models import state as st
from mnemonet.models.cells import GRUCell, LSTMCell
from mnemonet.models.dnc import DNCCell, DNCState, Trace, build_dnc
from mnemonet.models.recurrent import Recurrent, Stacked


def run_with_trace(model, x, state=None, lengths=None):
    """A DNC's output, final state and memory trace (``model.trace`` as a ``Trace``)."""
    y, final, traces = model.trace(x, state, lengths=lengths)
    return y, final, Trace(**traces)


SIZES = dict(input_size=5, output_size=3, hidden_size=16, memory_size=8, word_size=4, num_reads=2)


def small(**kw):
    return build_dnc(**{**SIZES, **kw})


def test_build_by_name_and_shapes():
    model = mnemonet.build("dnc", **SIZES)
    assert isinstance(model, Recurrent) and isinstance(model.cell, DNCCell)
    y, state = model(torch.randn(4, 7, 5))
    assert y.shape == (4, 7, 3)  # output size independent of input size
    assert isinstance(state, DNCState)
    a = state.access
    assert a.memory.shape == (4, 8, 4) and a.usage.shape == (4, 8) and a.link.link.shape == (4, 1, 8, 8)
    assert a.link.precedence.shape == (4, 1, 8) and a.read_weights.shape == (4, 2, 8)
    assert a.write_weights.shape == (4, 1, 8) and state.read_vectors.shape == (4, 2, 4)
    assert state.controller.h.shape == (4, 16)


def test_controller_sees_previous_read_vectors_and_gradient_reaches_them():
    model = small().double()
    cell = model.cell
    state = cell.initial_state(2, dtype=torch.float64)
    r_prev = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    state = state._replace(read_vectors=r_prev)
    y, _ = cell(torch.randn(2, 5, dtype=torch.float64), state)
    (g,) = torch.autograd.grad(y.sum(), r_prev)
    assert g.abs().sum() > 0  # y_t depends on r_{t−1} through the controller input [x_t; r_{t−1}]
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    r0 = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    y, _ = model(x, cell.initial_state(2, dtype=torch.float64)._replace(read_vectors=r0))
    (g,) = torch.autograd.grad(y[:, -1].sum(), r0)  # and through the whole sequence
    assert g.abs().sum() > 0


def test_controller_input_is_x_and_previous_reads():
    model = small()
    seen = []
    model.cell.controller.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    x = torch.randn(2, 3, 5)
    with kernels.enabled(False):  # the readable step calls the controller cell
        _, _state = model(x)
    assert seen[0].shape == (2, 5 + 2 * 4)
    torch.testing.assert_close(seen[2][:, :5], x[:, 2])
    assert seen[0][:, 5:].abs().sum() == 0  # r_0 = 0
    assert seen[2][:, 5:].abs().sum() > 0


def test_batch_sizes_1_and_7_on_one_model():
    model = small()
    x = torch.randn(7, 4, 5)
    y7, _ = model(x)
    y1, _ = model(x[3:4])
    assert y7.shape == (7, 4, 3) and y1.shape == (1, 4, 3)
    torch.testing.assert_close(y1, y7[3:4], rtol=1e-5, atol=1e-6)
    y1b, _ = model(x[:1], lengths=torch.tensor([2]))
    assert y1b[:, 2:].abs().sum() == 0


def test_batch_first_both_ways():
    model = small()
    tm = small(batch_first=False)
    tm.load_state_dict(model.state_dict())
    x = torch.randn(3, 5, 5)
    y, s = model(x)
    y_t, s_t = tm(x.transpose(0, 1))
    torch.testing.assert_close(y_t.transpose(0, 1), y)
    torch.testing.assert_close(s_t.access.memory, s.access.memory)


def test_state_persists_across_calls_and_resets_with_none():
    model = small()
    x = torch.randn(2, 6, 5)
    y_all, s_all = model(x)
    y_a, s_a = model(x[:, :3])
    y_b, s_b = model(x[:, 3:], s_a)
    torch.testing.assert_close(torch.cat([y_a, y_b], 1), y_all)
    torch.testing.assert_close(s_b.access.memory, s_all.access.memory)
    y_fresh, _ = model(x[:, 3:])
    assert not torch.allclose(y_fresh, y_b)


def test_padding_freezes_state_and_zeroes_outputs():
    model = small()
    x = torch.randn(3, 6, 5)
    lengths = torch.tensor([6, 2, 4])
    y, s = model(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        y_b, s_b = model(x[b : b + 1, :n])
        torch.testing.assert_close(y[b : b + 1, :n], y_b, rtol=1e-5, atol=1e-6)
        assert y[b, n:].abs().sum() == 0
        torch.testing.assert_close(s.access.memory[b : b + 1], s_b.access.memory, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("controller", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("lengths", [None, torch.tensor([5, 3])])
def test_sequence_fast_path_equals_step_loop(controller, lengths):
    model = small(controller=controller).double()
    x = torch.randn(2, 5, 5, dtype=torch.float64)
    y_fast, s_fast = model(x, lengths=lengths)  # cell.sequence: batched output, fused LSTM, deferred grads
    y_loop, s_loop, _ = model(x, lengths=lengths, return_states=True)  # Recurrent's step loop
    torch.testing.assert_close(y_fast, y_loop)
    for a, b in zip(st.tree_leaves(s_fast), st.tree_leaves(s_loop), strict=True):
        torch.testing.assert_close(a, b)
    g_fast = torch.autograd.grad((y_fast**2).sum() + s_fast.access.memory.sum(), list(model.parameters()))
    g_loop = torch.autograd.grad((y_loop**2).sum() + s_loop.access.memory.sum(), list(model.parameters()))
    for a, b in zip(g_fast, g_loop, strict=True):
        torch.testing.assert_close(a, b)


def test_other_controllers_and_validation():
    gru = small(controller="gru")
    assert isinstance(gru.cell.controller, GRUCell)
    custom = LSTMCell(5 + 2 * 4, 12)
    m = build_dnc(**{**SIZES, "hidden_size": None}, controller=custom)
    assert m(torch.randn(2, 3, 5))[0].shape == (2, 3, 3)
    stack = Stacked([Recurrent(LSTMCell(13, 10)), Recurrent(GRUCell(10, 9))])
    m2 = build_dnc(**{**SIZES, "hidden_size": None}, controller=stack)
    assert m2(torch.randn(2, 3, 5))[0].shape == (2, 3, 3)
    with pytest.raises(ValueError, match="controller: expected input_size 13"):
        build_dnc(**SIZES, controller=LSTMCell(5, 16))
    with pytest.raises(ValueError, match="hidden_size"):
        build_dnc(**{**SIZES, "hidden_size": 7}, controller=custom)
    with pytest.raises(ValueError, match="controller"):
        build_dnc(**SIZES, controller="transformer")
    with pytest.raises(ValueError, match="x"):
        small()(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="state"):
        small()(torch.randn(2, 3, 5), small().initial_state(3))


@pytest.mark.parametrize(
    "options", [dict(key_masking=True), dict(deallocation=True), dict(link_sharpness=True), dict(link_top_k=3)]
)
def test_options_run_and_backpropagate(options):
    model = small(**options)
    assert not model.cell.access.uses_fused_step
    x = torch.randn(2, 4, 5)
    y, _s = model(x)
    y.sum().backward()
    assert torch.isfinite(y).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_flatten_unflatten_round_trip_and_sparse_state():
    for model in (small(), small(link_top_k=3)):
        _, s = model(torch.randn(2, 3, 5))
        flat = model.flatten_state(s)
        assert flat.shape == (2, model.state_size)
        back = model.unflatten_state(flat)
        for a, b in zip(st.tree_leaves(back), st.tree_leaves(s), strict=True):
            torch.testing.assert_close(a, b)
        y1, _ = model(torch.ones(2, 1, 5), s)
        y2, _ = model(torch.ones(2, 1, 5), back)
        torch.testing.assert_close(y1, y2)


def test_run_with_trace_shapes_padding_and_equality():
    model = small(num_writes=2)
    x = torch.randn(3, 5, 5)
    lengths = torch.tensor([5, 2, 4])
    y, _s, tr = run_with_trace(model, x, lengths=lengths)
    y_plain, _ = model(x, lengths=lengths)
    torch.testing.assert_close(y, y_plain)
    assert tr.write_weights.shape == (3, 5, 2, 8) and tr.read_weights.shape == (3, 5, 2, 8)
    assert tr.usage.shape == (3, 5, 8) and tr.allocation.shape == (3, 5, 2, 8)
    assert tr.allocation_gates.shape == (3, 5, 2) and tr.free_gates.shape == (3, 5, 2)
    assert tr.read_modes.shape == (3, 5, 2, 5)
    assert tr.write_weights[1, 2:].abs().sum() == 0
    assert model._traces is None
    fused = small()
    _, s_f, tr_f = run_with_trace(fused, x[:1])
    torch.testing.assert_close(tr_f.read_weights[:, -1], s_f.access.read_weights)
    torch.testing.assert_close(tr_f.usage[:, -1], s_f.access.usage)
    assert Recurrent(LSTMCell(5, 4)).trace(x)[2] == {}  # a cell that offers nothing to trace


def test_model_contract_step_trajectories_and_jacobians():
    from mnemonet.analysis.dynamics import jacobians, transition

    model = small(hidden_size=4, memory_size=3, word_size=2, num_reads=1).double().eval()
    x = torch.randn(2, 3, 5, dtype=torch.float64)
    y, s, traj = model(x, return_states=True)
    assert traj.shape == (2, 3, model.state_size)
    torch.testing.assert_close(traj[:, -1], model.flatten_state(s))
    y0, s0 = model.step(x[:, 0], model.initial_state(2, dtype=torch.float64))
    torch.testing.assert_close(y0, y[:, 0])
    torch.testing.assert_close(model.flatten_state(s0), traj[:, 0])
    J = jacobians(model, traj[:, -1], torch.zeros(5, dtype=torch.float64))  # through the fused memory step
    ref = torch.autograd.functional.jacobian(
        lambda v: transition(model, v[None], torch.zeros(1, 5, dtype=torch.float64))[0], traj[0, -1]
    )
    torch.testing.assert_close(J[0], ref)
    assert torch.isfinite(J).all()
