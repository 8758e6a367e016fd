"""The model contract: states, flatten/unflatten, step, trajectories, reverse, input checks, registry."""

import pytest
import torch

import mnemonet
from mnemonet.models import state as st
from mnemonet.models.cells import LSTMCell, LSTMState
from mnemonet.models.readout import Readout
from mnemonet.models.recurrent import Recurrent, Stacked, reverse_padded


@pytest.mark.parametrize("layers,bidi", [(1, False), (2, False), (1, True), (2, True)])
def test_flatten_unflatten_round_trip(layers, bidi):
    model = mnemonet.build("lstm", input_size=3, hidden_size=4, num_layers=layers, bidirectional=bidi)
    S = model.state_size
    assert 2 * 4 * layers * (2 if bidi else 1) == S
    vec = torch.randn(5, S)
    state = model.unflatten_state(vec)
    torch.testing.assert_close(model.flatten_state(state), vec)
    model.check_state(state, 5)


def test_step_is_one_step_of_forward():
    model = mnemonet.build("gru", input_size=3, hidden_size=4, num_layers=2)
    x = torch.randn(2, 1, 3)
    y, state = model(x)
    y_t, state_t = model.step(x[:, 0], model.initial_state(2))
    torch.testing.assert_close(y[:, 0], y_t)
    torch.testing.assert_close(model.flatten_state(state), model.flatten_state(state_t))


def test_trajectory_shape_and_padding_freezes_state():
    model = mnemonet.build("lstm", input_size=2, hidden_size=3)
    x = torch.randn(3, 6, 2)
    lengths = torch.tensor([6, 3, 1])
    y, state, traj = model(x, lengths=lengths, return_states=True)
    assert traj.shape == (3, 6, 6)
    for b, n in enumerate(lengths.tolist()):
        assert torch.all(traj[b, n - 1 :] == traj[b, n - 1])  # frozen past the length
        assert torch.all(y[b, n:] == 0)  # padded outputs are zero
        torch.testing.assert_close(model.flatten_state(state)[b], traj[b, n - 1])


def test_reverse_padded():
    x = torch.arange(12.0).reshape(2, 6, 1)
    out = reverse_padded(x, torch.tensor([4, 6]))
    assert out[0, :, 0].tolist() == [3, 2, 1, 0, 4, 5]
    assert out[1, :, 0].tolist() == [11, 10, 9, 8, 7, 6]
    torch.testing.assert_close(reverse_padded(out, torch.tensor([4, 6])), x)


def test_reverse_recurrent_runs_from_the_last_real_step():
    cell = LSTMCell(2, 3)
    fwd, rev = Recurrent(cell), Recurrent(cell, reverse=True)
    x = torch.randn(1, 5, 2)
    lengths = torch.tensor([3])
    y_rev, _ = rev(x, lengths=lengths)
    y_ref, _ = fwd(x[:, :3].flip(1))
    torch.testing.assert_close(y_rev[:, :3], y_ref.flip(1))
    assert torch.all(y_rev[:, 3:] == 0)


def test_stacked_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match=r"layers\[1\]: expected input_size 4"):
        Stacked([Recurrent(LSTMCell(2, 4)), Recurrent(LSTMCell(5, 3))])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda m: m(torch.randn(2, 5)), r"x: expected shape \(B, T, 3\), got \(2, 5\)"),
        (lambda m: m(torch.randn(2, 5, 4)), r"x: expected shape \(B, T, 3\), got \(2, 5, 4\)"),
        (lambda m: m(torch.ones(2, 5, 3, dtype=torch.long)), "x: expected a floating-point tensor"),
        (lambda m: m(torch.randn(2, 5, 3), LSTMState(torch.zeros(2, 4), torch.zeros(3, 4))),
         r"state: leaf 1 .* expected shape \(2, 4\), got \(3, 4\)"),
        (lambda m: m(torch.randn(2, 5, 3), torch.zeros(2, 4)), r"state: expected a state like LSTMState"),
        (lambda m: m(torch.randn(2, 5, 3), lengths=torch.tensor([5, 6])), r"lengths: expected values in \[1, 5\]"),
        (lambda m: m(torch.randn(2, 5, 3), lengths=torch.tensor([5, 0])), r"lengths: expected values in \[1, 5\]"),
        (lambda m: m(torch.randn(2, 5, 3), lengths=torch.tensor([5])), r"lengths: expected shape \(2,\)"),
        (lambda m: m.unflatten_state(torch.zeros(2, 7)), r"vec: expected a flat state of shape \(B, 8\)"),
    ],
)  # fmt: skip
def test_bad_input_names_the_argument(call, match):
    model = mnemonet.build("lstm", input_size=3, hidden_size=4)
    with pytest.raises(ValueError, match=match):
        call(model)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="hidden_size: expected an integer > 0"):
        mnemonet.build("lstm", input_size=3, hidden_size=0)
    with pytest.raises(ValueError, match="nonlinearity: expected one of"):
        mnemonet.build("rnn", input_size=3, hidden_size=4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="recurrent_init: expected one of"):
        mnemonet.build("gru", input_size=3, hidden_size=4, recurrent_init="eye")


def test_registry_errors_suggest_the_closest_name():
    with pytest.raises(ValueError, match="did you mean 'lstm'"):
        mnemonet.build("lstn", input_size=3, hidden_size=4)
    with pytest.raises(ValueError, match="hiden_size: not an argument of model 'lstm'; did you mean 'hidden_size'"):
        mnemonet.build("lstm", input_size=3, hiden_size=4)
    assert {"rnn", "lstm", "gru"} <= set(mnemonet.available())
    with pytest.raises(ValueError, match="hidden_size: required by model 'gru' but not given"):
        mnemonet.build("gru", input_size=3)


def test_tree_helpers():
    a = LSTMState(torch.ones(2, 3), torch.zeros(2, 3))
    b = LSTMState(torch.full((2, 3), 5.0), torch.full((2, 3), 7.0))
    out = st.tree_where(torch.tensor([True, False]), b, a)
    assert out.h[0].tolist() == [5.0] * 3 and out.h[1].tolist() == [1.0] * 3
    assert isinstance(out, LSTMState)
    nested = (a, (b,))
    assert len(st.tree_leaves(nested)) == 4
    with pytest.raises(TypeError, match="state: expected a Tensor"):
        st.tree_leaves([1, 2])


def test_named_initialisations():
    cell = LSTMCell(6, 5, forget_bias=1.0, input_init="xavier", recurrent_init="orthogonal")
    for block in cell.weight_hh.chunk(4, 0):
        torch.testing.assert_close(block @ block.T, torch.eye(5), atol=1e-5, rtol=0)
    bound = (6 / (6 + 5)) ** 0.5
    assert cell.weight_ih.abs().max() <= bound
    assert torch.all(cell.bias_ih[5:10] + cell.bias_hh[5:10] == 1.0)
    irnn = mnemonet.build("rnn", input_size=2, hidden_size=3, nonlinearity="relu", recurrent_init="identity")
    assert torch.equal(irnn.cell.weight_hh.data, torch.eye(3))
    single = LSTMCell(2, 3, forget_bias=1.0, single_bias=True)
    assert torch.all(single.bias[3:6] == 1.0)
    default = LSTMCell(2, 3)
    assert default.weight_hh.abs().max() <= 3**-0.5


def test_extra_repr_prints_non_defaults():
    text = repr(mnemonet.build("lstm", input_size=2, hidden_size=3, single_bias=True, forget_bias=1.0))
    assert "single_bias=True" in text and "forget_bias=1.0" in text
    assert "input_init" not in text


def test_trace_names_each_loop_and_matches_forward():
    torch.manual_seed(0)
    layer = mnemonet.build("rims", input_size=3, num_modules=4, module_size=2, k=2, dropout=0.0)
    model = Readout(Stacked([layer, Recurrent(LSTMCell(8, 5))]), output_size=2)
    x, lengths = torch.randn(2, 6, 3), torch.tensor([6, 3])
    y, _ = model(x, lengths=lengths)
    y_t, _, traces = model.trace(x, lengths=lengths)
    torch.testing.assert_close(y_t, y)
    assert list(traces) == ["core.layers.0.active"]  # the LSTM layer offers nothing; names follow the modules
    active = traces["core.layers.0.active"]
    assert active.shape == (2, 6, 4) and not active[1, 3:].any() and bool((active[0].sum(-1) == 2).all())
    assert layer._traces is None  # tracing ends with the call
