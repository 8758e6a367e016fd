"""RIMs: a plain-loop reference of eqs. (1)-(7), hand-built selection, masks, gradients, dropout placement, trace."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mnemonet.analysis.module_maps import activity_array, plot_module_activity
from mnemonet.models import state as st
from mnemonet.models.base import Cell
from mnemonet.models.recurrent import Recurrent
from mnemonet.models.registry import build
from mnemonet.models.rims import RIMsCell, RIMsGRUState, RIMsState, rims, top_k_mask


def traced(cell, x_t, state):
    """One step of a cell with its trace: (y, state, active)."""
    y, new, record = cell.trace_step(cell.prepare(x_t.unsqueeze(1))[0], state)
    return y, new, record["active"]


def run_with_trace(model, x, state=None, lengths=None):
    """A model's output, final state and `active` trace."""
    y, final, traces = model.trace(x, state, lengths=lengths)
    return y, final, traces["active"]


def small_cell(**kw) -> RIMsCell:
    args = dict(
        input_size=5,
        num_modules=4,
        module_size=6,
        k=2,
        input_key_size=3,
        input_value_size=4,
        comm_heads=2,
        comm_key_size=3,
        comm_value_size=2,
        dropout=0.0,
    )
    args.update(kw)
    return RIMsCell(**args)


def random_state(cell: Cell, batch: int, dtype=torch.float32):
    """A random state of any cell (RIMs or BRIMs), leaves ~ N(0, 1)."""
    s = cell.initial_state(batch, dtype=dtype)
    return st.tree_map(lambda z: torch.randn_like(z), s)


@torch.no_grad()
def reference_step(cell: RIMsCell, x, h, c=None, sources=None):
    """Eqs. (1)-(7) with Python loops over batch, modules, heads and sources (no grouped matmuls, no einsum).

    ``sources``: a list of (keys `[B, H*d_k]`, values `[B, H*d_v]`) of the input sources; by default the
    single source x through ``input_key`` / ``input_value`` (BRIMs adds a top-down source).
    """
    B, n, H = h.shape[0], cell.num_modules, cell.input_heads
    dk, dv = cell.input_key_size, cell.input_value_size
    Hc, dck, dcv = cell.comm_heads, cell.comm_key_size, cell.comm_value_size
    if sources is None:
        sources = [(cell.input_key(x), cell.input_value(x))]
    dyn = cell.dynamics
    h_out, c_out = h.clone(), None if c is None else c.clone()
    actives = torch.zeros(B, n, dtype=torch.bool)
    for b in range(B):
        null, score, reads = [], [], []
        for m in range(n):
            q = h[b, m] @ cell.input_query.weight[m]  # (H*dk,)
            p_null, s_sum, read = 0.0, 0.0, []
            for head in range(H):
                qh = q[head * dk : (head + 1) * dk]
                s = torch.stack([qh @ K[b, head * dk : (head + 1) * dk] for K, _ in sources]) / math.sqrt(dk)
                p = torch.softmax(torch.cat([torch.zeros(1, dtype=s.dtype), s]), 0)  # [null, sources...]
                p_null += float(p[0]) / H
                s_sum += float(torch.logsumexp(s, 0)) / H
                read.append(sum(p[1 + i] * V[b, head * dv : (head + 1) * dv] for i, (_, V) in enumerate(sources)))
            null.append(p_null)
            score.append(s_sum)
            reads.append(torch.cat(read))
        if cell.selection == "null":
            chosen = sorted(range(n), key=lambda m: null[m])[: cell.k]
        else:
            chosen = sorted(range(n), key=lambda m: -score[m])[: cell.k]
        actives[b, chosen] = True
        # eq. (6): dynamics of every module (the proposals); only the active ones take theirs
        h_tilde, proposed = h[b].clone(), h[b].clone()
        for m in range(n):
            gx = reads[m] @ dyn.weight_ih[m] + dyn.bias_ih[m]
            gh = h[b, m] @ dyn.weight_hh[m] + dyn.bias_hh[m]
            if c is not None:
                i, f, g, o = (gx + gh).chunk(4)
                c_new = torch.sigmoid(f) * c[b, m] + torch.sigmoid(i) * torch.tanh(g)
                proposed[m] = torch.sigmoid(o) * torch.tanh(c_new)
                if m in chosen:
                    c_out[b, m] = c_new
            else:
                xr, xz, xn = gx.chunk(3)
                hr, hz, hn = gh.chunk(3)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                nn_ = torch.tanh(xn + r * hn)
                proposed[m] = (1 - z) * nn_ + z * h[b, m]
            if m in chosen:
                h_tilde[m] = proposed[m]
        # eq. (7): communication, residual on the active modules; keys/values from what modules offer
        offered = proposed if cell.inactive_comm == "proposed" else h_tilde
        for m in chosen:
            q = h_tilde[m] @ cell.comm_query.weight[m]
            heads = []
            for head in range(Hc):
                qh = q[head * dck : (head + 1) * dck]
                ks = [(offered[j] @ cell.comm_key.weight[j])[head * dck : (head + 1) * dck] for j in range(n)]
                vs = [(offered[j] @ cell.comm_value.weight[j])[head * dcv : (head + 1) * dcv] for j in range(n)]
                att = torch.softmax(torch.stack([qh @ kj for kj in ks]) / math.sqrt(dck), 0)
                heads.append(sum(a * v for a, v in zip(att, vs, strict=True)))
            read = torch.cat(heads)
            if cell.comm_output_kind == "gated_tanh":
                out = cell.comm_output(read)
                gate = cell.comm_gate(read)
                h_out[b, m] = h_tilde[m] + torch.tanh(out) / (1 + torch.exp(-gate))
            else:
                h_out[b, m] = h_tilde[m] + read @ cell.comm_output.weight[m]
    return h_out, c_out, actives


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(dynamics="gru"),
        dict(input_heads=2, selection="score"),
        dict(input_heads=2, dynamics="gru"),
        dict(k=4),
        dict(input_bias=True),
        dict(comm_output="linear", inactive_comm="kept", init="torch"),
        dict(dynamics="gru", inactive_comm="kept"),
    ],
)
def test_step_matches_plain_loop_reference(kw):
    torch.manual_seed(1)
    cell = small_cell(**kw).double()
    x = torch.randn(3, 5, dtype=torch.double)
    state = random_state(cell, 3, torch.double)
    y, new = cell(x, state)
    c = state.c if isinstance(state, RIMsState) else None
    h_ref, c_ref, active_ref = reference_step(cell, x, state.h, c)
    torch.testing.assert_close(new.h, h_ref)
    torch.testing.assert_close(y, h_ref.flatten(1))
    if c is not None:
        torch.testing.assert_close(new.c, c_ref)
    assert torch.equal(traced(cell, x, state)[2], active_ref)


def test_hand_built_selection_picks_least_null_attention():
    # key = x, query of module m = s_m * e_1, x = e_1: score_m = s_m / sqrt(2); modules 1 and 3 win.
    cell = RIMsCell(2, 4, 1, k=2, input_key_size=2, input_value_size=1)
    with torch.no_grad():
        cell.input_key.weight.copy_(torch.eye(2))
        cell.input_query.weight.zero_()
        cell.input_query.weight[:, 0, 0] = torch.tensor([0.1, 3.0, -2.0, 1.0])
    state = RIMsState(torch.ones(1, 4, 1), torch.zeros(1, 4, 1))
    assert traced(cell, torch.tensor([[1.0, 0.0]]), state)[2].tolist() == [[False, True, False, True]]
    assert top_k_mask(torch.tensor([[0.1, 3.0, -2.0, 1.0]]), 2).tolist() == [[False, True, False, True]]
    # ties go to the lower index: from the zero state every module attends equally to null
    assert top_k_mask(torch.tensor([[0.0, 1.0, 1.0, 1.0]]), 2).tolist() == [[False, True, True, False]]
    assert traced(cell, torch.tensor([[1.0, 0.0]]), cell.initial_state(1))[2].tolist() == [[True, True, False, False]]


def test_null_and_score_selection_agree_with_one_head():
    torch.manual_seed(0)
    a, b = small_cell(), small_cell(selection="score")
    b.load_state_dict(a.state_dict())
    x, state = torch.randn(8, 5), random_state(a, 8)
    assert torch.equal(traced(a, x, state)[2], traced(b, x, state)[2])


def test_shapes_states_and_active_counts():
    torch.manual_seed(0)
    model = build("rims", input_size=5, num_modules=4, module_size=6, k=3)
    y, state = model(torch.randn(2, 7, 5))
    assert y.shape == (2, 7, 24)
    assert isinstance(state, RIMsState) and state.h.shape == state.c.shape == (2, 4, 6)
    gru = rims(5, 4, 6, 3, dynamics="gru")
    y, state = gru(torch.randn(2, 7, 5))
    assert isinstance(state, RIMsGRUState) and state._fields == ("h",) and state.h.shape == (2, 4, 6)
    assert gru.state_size == 24 and model.state_size == 48
    y, state, active = run_with_trace(model, torch.randn(2, 7, 5))
    assert active.shape == (2, 7, 4) and active.dtype == torch.bool
    assert torch.equal(active.sum(-1), torch.full((2, 7), 3))
    assert model._traces is None


def test_k_equal_n_is_always_active():
    torch.manual_seed(0)
    model = rims(5, 4, 6, 4)
    _, _, active = run_with_trace(model, torch.randn(3, 6, 5))
    assert bool(active.all())


def test_inactive_modules_keep_their_state_bit_for_bit():
    torch.manual_seed(0)
    for dynamics in ("lstm", "gru"):
        cell = small_cell(dynamics=dynamics, k=1)
        state = random_state(cell, 4)
        for _ in range(5):
            _, new, active = traced(cell, torch.randn(4, 5), state)
            off = ~active  # (B, n)
            for old_leaf, new_leaf in zip(state, new, strict=True):
                assert torch.equal(new_leaf[off], old_leaf[off])
                assert not torch.equal(new_leaf[~off], old_leaf[~off])
            state = new


@pytest.mark.parametrize("inactive_comm", ["proposed", "kept"])
def test_no_gradient_through_inactive_updates(inactive_comm):
    torch.manual_seed(0)
    cell = small_cell(k=2, comm_output="linear", inactive_comm=inactive_comm)
    h0 = torch.randn(1, 4, 6, requires_grad=True)
    state = RIMsState(h0, torch.randn(1, 4, 6))
    _, new, active = traced(cell, torch.randn(1, 5), state)
    active = active[0]
    weights = torch.randn_like(new.h)
    (new.h * weights).sum().backward(retain_graph=True)
    # module-owned parameters of inactive modules: exactly zero gradient; active ones: nonzero
    owned = [
        cell.dynamics.weight_ih,
        cell.dynamics.weight_hh,
        cell.dynamics.bias_ih,
        cell.dynamics.bias_hh,
        cell.input_query.weight,
        cell.comm_query.weight,
        cell.comm_output.weight,
    ]
    for p in owned:
        assert torch.equal(p.grad[~active], torch.zeros_like(p.grad[~active]))
        assert bool((p.grad[active].flatten(1).abs().sum(1) > 0).all())
    # an inactive module's new state is its old state: d h_new[j] / d h_old[j] = identity
    for j in torch.nonzero(~active).flatten().tolist():
        g = torch.autograd.grad((new.h[:, j] * weights[:, j]).sum(), h0, retain_graph=True)[0]
        want = torch.zeros_like(g)
        want[:, j] = weights[:, j]
        assert torch.equal(g, want)
    # what inactive modules offer to communication: "kept" offers h_{t-1} with its gradient, "proposed"
    # (official) the would-be update with the gradient blocked, so active outputs do not reach it
    g = torch.autograd.grad((new.h[:, active] * weights[:, active]).sum(), h0)[0]
    reached = bool(g[:, ~active].abs().sum() > 0)
    assert reached == (inactive_comm == "kept")


def test_inactive_modules_offer_their_would_be_update_officially():
    torch.manual_seed(0)
    a, b = small_cell(k=1), small_cell(k=1, inactive_comm="kept")
    b.load_state_dict(a.state_dict())
    x, state = torch.randn(4, 5), random_state(a, 4)
    # the same selection and dynamics; only the keys/values offered by inactive modules differ
    ya, yb = a(x, state)[0], b(x, state)[0]
    assert not torch.allclose(ya, yb)
    with torch.no_grad():  # with no communication both equal the dynamics' update
        for cell in (a, b):
            cell.comm_gate.bias.fill_(-1e4)
    torch.testing.assert_close(a(x, state)[0], b(x, state)[0])


@pytest.mark.parametrize("kw", [dict(inactive_comm="kept"), dict(k=3, input_bias=True)])
def test_gradcheck_one_step_float64(kw):
    # the official "proposed" communication blocks a true gradient on purpose, so gradcheck runs with
    # "kept" or with every module active (where nothing is blocked)
    torch.manual_seed(3)
    cell = small_cell(num_modules=3, module_size=2, input_heads=2, **kw).double()
    x = torch.randn(2, 5, dtype=torch.double, requires_grad=True)
    h = torch.randn(2, 3, 2, dtype=torch.double, requires_grad=True)
    c = torch.randn(2, 3, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h, c: cell(x, RIMsState(h, c))[0], (x, h, c))


def test_dropouts_act_where_their_names_say():
    torch.manual_seed(0)
    x, state = torch.randn(6, 5), None
    # with a zero communication output map, only input dropout can change anything
    cell = small_cell(k=4, input_dropout=0.5, comm_output="linear")
    state = random_state(cell, 6)
    with torch.no_grad():
        cell.comm_output.weight.zero_()
    ref = cell.eval()(x, state)[0]
    assert not torch.equal(cell.train()(x, state)[0], ref)
    other = small_cell(k=4, comm_dropout=0.5, comm_output="linear")
    other.load_state_dict(cell.state_dict())
    assert torch.equal(other.train()(x, state)[0], ref)
    # with zero input values, only communication dropout can change anything
    with torch.no_grad():
        cell.input_value.weight.zero_()
        other.input_value.weight.zero_()
        cell.comm_output.weight.normal_()
        other.comm_output.weight.copy_(cell.comm_output.weight)
    ref = cell.eval()(x, state)[0]
    assert torch.equal(cell.train()(x, state)[0], ref)
    assert not torch.equal(other.train()(x, state)[0], ref)


def test_output_dropout_acts_on_the_read_and_the_communication_output():
    # official placement: dropout on the input attention's read A_k and on the communication output
    torch.manual_seed(0)
    x = torch.randn(6, 5)
    cell = small_cell(k=4, dropout=0.5)
    state = random_state(cell, 6)

    def changes(cell):
        return not torch.equal(cell.train()(x, state)[0], cell.eval()(x, state)[0])

    with torch.no_grad():
        cell.comm_gate.bias.fill_(-1e4)  # communication silenced: only the read can be dropped
    assert changes(cell)
    with torch.no_grad():
        cell.input_value.weight.zero_()  # zero read and no communication: nothing to drop
    assert not changes(cell)
    with torch.no_grad():
        cell.comm_gate.bias.zero_()  # communication back: its output is dropped
    assert changes(cell)


def test_sequence_fast_path_equals_step_loop_with_padding():
    torch.manual_seed(0)
    model = rims(5, 4, 6, 2, dropout=0.0)
    x, lengths = torch.randn(3, 7, 5), torch.tensor([7, 2, 5])
    y_fast, s_fast = model(x, lengths=lengths)
    y_loop, s_loop, _ = model(x, lengths=lengths, return_states=True)
    torch.testing.assert_close(y_fast, y_loop)
    for a, b in zip(s_fast, s_loop, strict=True):
        torch.testing.assert_close(a, b)
    # padded steps: zero output, state of the last real step, no active module
    assert torch.equal(y_fast[1, 2:], torch.zeros(5, 24))
    _, s_short = model(x[1:2, :2])
    torch.testing.assert_close(s_fast.h[1:2], s_short.h)
    _, _, active = run_with_trace(model, x, lengths=lengths)
    assert not active[1, 2:].any() and torch.equal(active[1, :2].sum(-1), torch.tensor([2, 2]))


def test_trace_of_a_reversed_model_is_aligned_with_the_input():
    torch.manual_seed(0)
    cell = small_cell()
    fwd, bwd = Recurrent(cell), Recurrent(cell, reverse=True)
    x = torch.randn(2, 6, 5)
    _, _, a_fwd = run_with_trace(fwd, x.flip(1))
    _, _, a_bwd = run_with_trace(bwd, x)
    assert torch.equal(a_bwd, a_fwd.flip(1))


def test_batch_first_false():
    torch.manual_seed(0)
    a = rims(5, 4, 6, 2, dropout=0.0)
    b = rims(5, 4, 6, 2, dropout=0.0, batch_first=False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 7, 5)
    torch.testing.assert_close(b(x.transpose(0, 1))[0].transpose(0, 1), a(x)[0])
    _, _, active = run_with_trace(b, x.transpose(0, 1))
    assert active.shape == (3, 7, 4)


def test_determinism_with_a_seed():
    def run(seed):
        torch.manual_seed(0)
        model = rims(5, 4, 6, 2, input_dropout=0.3, comm_dropout=0.3)
        x = torch.randn(2, 6, 5)
        torch.manual_seed(seed)
        return model(x)[0]

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"k: expected an integer in \[1, num_modules=4\]"):
        RIMsCell(5, 4, 6, 5)
    with pytest.raises(ValueError, match="k: expected an integer > 0"):
        RIMsCell(5, 4, 6, 0)
    with pytest.raises(ValueError, match="dynamics"):
        RIMsCell(5, 4, 6, 2, dynamics="rnn")
    with pytest.raises(ValueError, match="selection"):
        RIMsCell(5, 4, 6, 2, selection="top")
    with pytest.raises(ValueError, match="comm_dropout"):
        RIMsCell(5, 4, 6, 2, comm_dropout=1.0)
    with pytest.raises(ValueError, match=r"x_t: expected shape \(B, 5\)"):
        small_cell()(torch.zeros(2, 4), small_cell().initial_state(2))
    with pytest.raises(ValueError, match=r"x: expected shape \(B, T, 5\)"):
        rims(5, 4, 6, 2)(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="num_modul"):
        build("rims", input_size=5, num_module=4, module_size=6, k=2)


def test_plot_module_activity_renders(tmp_path):
    torch.manual_seed(0)
    _, _, active = run_with_trace(rims(5, 4, 6, 2), torch.randn(2, 9, 5))
    path = tmp_path / "rims.png"
    fig = plot_module_activity(active, batch_index=1, path=path)
    assert path.stat().st_size > 1000
    assert len(fig.axes) == 1
    image = fig.axes[0].get_images()[0].get_array()
    assert image.shape == (4, 9)
    assert (image == active[1].T.numpy()).all()
    with pytest.raises(ValueError, match="batch_index"):
        activity_array(active, batch_index=2)
    with pytest.raises(ValueError, match="active: expected shape"):
        activity_array(active[0])


def test_functional_helpers_shapes():
    # the pure functions' documented shapes
    from mnemonet.models.rims import attention_read, communication_attention, input_attention, input_scores

    q, k = torch.randn(2, 4, 3, 5), torch.randn(2, 2, 3, 5)
    probs = input_attention(input_scores(q, k))
    assert probs.shape == (2, 4, 3, 3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4, 3))
    assert attention_read(probs[..., 1:], torch.randn(2, 2, 3, 7)).shape == (2, 4, 21)
    out = communication_attention(torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 6))
    assert out.shape == (2, 3, 4, 6)
    # a module whose query is orthogonal to every key splits its attention evenly over [null, inputs]
    probs = input_attention(torch.zeros(1, 1, 1, 2))
    torch.testing.assert_close(probs, torch.full((1, 1, 1, 3), 1 / 3))
    assert F.softmax(torch.zeros(3), 0).sum() == 1


def test_official_defaults_sizes_and_init_scales():
    # anirudh9119/RIMs BlocksCore: read of 4 x module size, communication 4 heads of 16, GroupLinearLayer
    # weights 0.01 * N(0, 1), the LSTM as one nn.LSTMCell over all modules (U(+-1/sqrt(n * module_size)))
    torch.manual_seed(0)
    cell = RIMsCell(3, 6, 100, k=4)
    assert cell.input_value_size == 400 and cell.dynamics.input_size == 400 and cell.input_key_size == 64
    assert (cell.comm_heads, cell.comm_key_size, cell.comm_value_size) == (4, 16, 16)
    assert cell.dropout == 0.1 and cell.comm_output_kind == "gated_tanh" and cell.inactive_comm == "proposed"
    for m in (cell.input_key, cell.input_value, cell.input_query, cell.comm_query, cell.comm_key, cell.comm_value):
        assert abs(float(m.weight.detach().std()) - 0.01) < 0.001
    bound = 1 / math.sqrt(600)
    for p in cell.dynamics.parameters():
        assert 0.9 * bound < float(p.detach().abs().max()) <= bound
    assert RIMsCell(3, 6, 100, k=4, input_heads=4).input_value_size == 100  # 4 heads share the 4x read
    torch_init = RIMsCell(3, 6, 100, k=4, init="torch")
    assert float(torch_init.input_query.weight.detach().abs().max()) > 0.05  # U(+-1/sqrt(100))
    assert float(torch_init.dynamics.weight_hh.detach().abs().max()) > 1.1 * bound  # U(+-1/sqrt(module_size))
