"""BRIMs: per-layer loop reference with top-down sources, L = 1 equals RIMs, top-down wiring, trace, seeds."""

from __future__ import annotations

import pytest
import torch
from test_rims import random_state, reference_step, run_with_trace, traced

from mnemonet.analysis.module_maps import plot_module_activity
from mnemonet.models import state as st
from mnemonet.models.brims import BRIMsCell, brims
from mnemonet.models.registry import build
from mnemonet.models.rims import RIMsGRUState, RIMsState, rims


def small_brims(**kw) -> BRIMsCell:
    args = dict(
        input_size=5,
        num_modules=4,
        module_size=3,
        k=2,
        num_layers=3,
        input_key_size=3,
        input_value_size=4,
        comm_heads=2,
        comm_key_size=3,
        comm_value_size=2,
        dropout=0.0,
    )
    args.update(kw)
    return BRIMsCell(**args)


@torch.no_grad()
def reference_brims_step(cell: BRIMsCell, x, state):
    """Layers bottom to top; layer l reads [bottom-up at t, top-down = layer l+1 at t-1] (loop reference)."""
    below, new = x, []
    for i, layer in enumerate(cell.layers):
        sources = [(layer.input_key(below), layer.input_value(below))]
        if i < cell.num_layers - 1:
            above = state[i + 1].h.flatten(1)  # layer i+1 at t-1
            sources.append((above @ cell.top_down_key[i].weight.T, above @ cell.top_down_value[i].weight.T))
        c = state[i].c if isinstance(state[i], RIMsState) else None
        h_new, c_new, _ = reference_step(layer, None, state[i].h, c, sources=sources)
        new.append(RIMsState(h_new, c_new) if c is not None else RIMsGRUState(h_new))
        below = h_new.flatten(1)
    return new


@pytest.mark.parametrize("kw", [dict(), dict(dynamics="gru", input_heads=2, selection="score")])
def test_step_matches_layered_loop_reference(kw):
    torch.manual_seed(0)
    cell = small_brims(**kw).double()
    x, state = torch.randn(3, 5, dtype=torch.double), random_state(cell, 3, torch.double)
    y, new = cell(x, state)
    want = reference_brims_step(cell, x, state)
    for got, ref in zip(new, want, strict=True):
        for a, b in zip(got, ref, strict=True):
            torch.testing.assert_close(a, b)
    torch.testing.assert_close(y, want[-1].h.flatten(1))


def test_one_layer_equals_rims():
    torch.manual_seed(0)
    one = brims(5, 4, 3, 2, num_layers=1, input_dropout=0.2, input_heads=2, comm_key_size=8)
    ref = rims(5, 4, 3, 2, input_dropout=0.2, input_heads=2, comm_key_size=8)
    one.cell.layers[0].load_state_dict(ref.cell.state_dict())
    assert len(one.cell.top_down_key) == 0
    x = torch.randn(2, 6, 5)
    one.eval(), ref.eval()
    y1, s1, a1 = run_with_trace(one, x)
    y2, s2, a2 = run_with_trace(ref, x)
    assert torch.equal(y1, y2) and torch.equal(s1[0].h, s2.h) and torch.equal(s1[0].c, s2.c)
    assert torch.equal(a1[:, :, 0], a2)
    torch.manual_seed(5)
    y1 = one.train()(x)[0]
    torch.manual_seed(5)
    assert torch.equal(y1, ref.train()(x)[0])


def test_top_down_keys_for_every_layer_but_the_top():
    torch.manual_seed(0)
    cell = small_brims(k=4, num_layers=3)
    assert len(cell.top_down_key) == len(cell.top_down_value) == 2
    assert [m.in_features for m in cell.top_down_key] == [12, 12]
    x, state = torch.randn(2, 5), random_state(cell, 2)
    _, base = cell(x, state)
    for above in range(3):
        # perturb layer `above` at t-1: layer above-1 must change through its top-down input at step t
        bumped = list(state)
        bumped[above] = RIMsState(state[above].h + 0.5, state[above].c)
        _, new = cell(x, tuple(bumped))
        if above > 0:
            assert not torch.allclose(new[above - 1].h, base[above - 1].h)
        # layers below above-1 see the change only through the bottom-up path of later steps
        for lower in range(above - 1):
            assert torch.equal(new[lower].h, base[lower].h)


def test_top_down_dropout_only_in_training():
    torch.manual_seed(0)
    cell = small_brims(top_down_dropout=0.5, num_layers=2)
    x, state = torch.randn(4, 5), random_state(cell, 4)
    ref = cell.eval()(x, state)[0]
    assert torch.equal(cell.eval()(x, state)[0], ref)
    assert not torch.equal(cell.train()(x, state)[0], ref)


def test_shapes_trace_and_output_layer():
    torch.manual_seed(0)
    model = build("brims", input_size=5, num_modules=[4, 3], module_size=[3, 2], k=[2, 1], num_layers=2)
    x, lengths = torch.randn(2, 6, 5), torch.tensor([6, 4])
    y, state, active = run_with_trace(model, x, lengths=lengths)
    assert y.shape == (2, 6, 6) and len(state) == 2
    assert state[0].h.shape == (2, 4, 3) and state[1].h.shape == (2, 3, 2)
    assert active.shape == (2, 6, 2, 4)
    assert torch.equal(active[0].sum(-1), torch.tensor([[2, 1]] * 6))
    assert not active[:, :, 1, 3].any()  # layer 1 has 3 modules: the 4th slot is padding
    assert not active[1, 4:].any()
    low = brims(5, [4, 3], [3, 2], [2, 1], num_layers=2, output_layer=0)
    low.load_state_dict(model.state_dict())
    y0, s0 = low(x)
    assert y0.shape == (2, 6, 12)
    torch.testing.assert_close(y0[:, -1], s0[0].h.flatten(1))
    assert model._traces is None


def test_sequence_fast_path_equals_step_loop():
    torch.manual_seed(0)
    model = brims(5, 4, 3, 2, num_layers=3, dynamics="gru", dropout=0.0)
    x, lengths = torch.randn(3, 6, 5), torch.tensor([6, 1, 4])
    y_fast, s_fast = model(x, lengths=lengths)
    y_loop, s_loop, _ = model(x, lengths=lengths, return_states=True)
    torch.testing.assert_close(y_fast, y_loop)
    for a, b in zip(st.tree_leaves(s_fast), st.tree_leaves(s_loop), strict=True):
        torch.testing.assert_close(a, b)
    assert torch.equal(y_fast[1, 1:], torch.zeros(5, 12))


def test_inactive_modules_unchanged_and_no_gradient_in_every_layer():
    torch.manual_seed(0)
    cell = small_brims(k=1, num_layers=2)
    state = random_state(cell, 1)
    _, new, active = traced(cell, torch.randn(1, 5), state)
    active = active[0]  # (L, n)
    sum(s.h.sum() for s in new).backward()
    for i in range(2):
        off = ~active[i]
        assert torch.equal(new[i].h[0, off], state[i].h[0, off])
        assert torch.equal(new[i].c[0, off], state[i].c[0, off])
        g = cell.layers[i].dynamics.weight_ih.grad
        assert torch.equal(g[off], torch.zeros_like(g[off])) and bool(g[~off].abs().sum() > 0)


def test_determinism_with_a_seed():
    def run(seed):
        torch.manual_seed(0)
        model = brims(5, 4, 3, 2, num_layers=2, input_dropout=0.2, comm_dropout=0.2, top_down_dropout=0.2)
        x = torch.randn(2, 5, 5)
        torch.manual_seed(seed)
        return model(x)[0]

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"num_modules: expected an int or 2 ints"):
        BRIMsCell(5, [4, 4, 4], 3, 2, num_layers=2)
    with pytest.raises(ValueError, match="output_layer"):
        BRIMsCell(5, 4, 3, 2, num_layers=2, output_layer=2)
    with pytest.raises(ValueError, match="top_down_dropout"):
        BRIMsCell(5, 4, 3, 2, top_down_dropout=-0.1)
    with pytest.raises(ValueError, match=r"k: expected an integer in \[1, num_modules=4\]"):
        BRIMsCell(5, 4, 3, [2, 5], num_layers=2)
    with pytest.raises(ValueError, match="num_layers"):
        BRIMsCell(5, 4, 3, 2, num_layers=0)
    with pytest.raises(ValueError, match=r"x_t: expected shape \(B, 5\)"):
        cell = small_brims()
        cell(torch.zeros(2, 3), cell.initial_state(2))
    with pytest.raises(ValueError, match="state"):
        brims(5, 4, 3, 2)(torch.zeros(2, 3, 5), state=(RIMsState(torch.zeros(2, 4, 3), torch.zeros(2, 4, 3)),))


def test_plot_one_panel_per_layer(tmp_path):
    torch.manual_seed(0)
    _, _, active = run_with_trace(brims(5, 4, 3, 2, num_layers=3), torch.randn(1, 7, 5))
    fig = plot_module_activity(active, path=tmp_path / "brims.png")
    assert (tmp_path / "brims.png").stat().st_size > 1000
    assert len(fig.axes) == 3
    top = fig.axes[0].get_images()[0].get_array()  # top layer drawn first
    assert (top == active[0, :, 2].T.numpy()).all()


def test_official_brims_defaults():
    # sarthmit/BRIMs: 4 input heads sharing a read of 4 x module size, communication 4 heads of 32
    cell = BRIMsCell(3, 6, 20, 4)
    for layer in cell.layers:
        assert layer.input_heads == 4 and layer.input_heads * layer.input_value_size == 80
        assert (layer.comm_heads, layer.comm_key_size) == (4, 32)
        assert layer.dropout == 0.1 and layer.inactive_comm == "proposed" and layer.comm_output_kind == "gated_tanh"
