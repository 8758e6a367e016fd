"""Our RNN/LSTM/GRU load torch.nn's state dicts and match its outputs and final states."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import mnemonet
from mnemonet.models.recurrent import BiState

TORCH = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def to_torch_layout(state, kind):
    """Our nested final state -> torch's h_n (and c_n) of shape (L*D, B, H)."""
    layers = state if isinstance(state, tuple) and not hasattr(state, "_fields") else (state,)
    flat = []
    for layer in layers:
        flat += [layer.forward, layer.backward] if isinstance(layer, BiState) else [layer]
    h = torch.stack([s.h for s in flat])
    return (h, torch.stack([s.c for s in flat])) if kind == "lstm" else h


def pair(kind, I, H, layers, bidi, dtype, **kw):
    ref = TORCH[kind](I, H, num_layers=layers, bidirectional=bidi, batch_first=True, **kw).to(dtype)
    ours = mnemonet.build(kind, input_size=I, hidden_size=H, num_layers=layers, bidirectional=bidi, **kw).to(dtype)
    result = ours.load_state_dict(ref.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    return ours, ref


CASES = [(k, L, b) for k in ("rnn", "lstm", "gru") for L in (1, 2) for b in (False, True)]


@pytest.mark.parametrize("kind,layers,bidi", CASES)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_matches_torch_full_length(kind, layers, bidi, dtype, tol):
    ours, ref = pair(kind, 5, 7, layers, bidi, dtype)
    x = torch.randn(4, 9, 5, dtype=dtype)
    y, state = ours(x)
    y_ref, state_ref = ref(x)
    torch.testing.assert_close(y, y_ref, atol=tol, rtol=tol)
    for got, want in zip(to_torch_layout(state, kind) if kind == "lstm" else (to_torch_layout(state, kind),),
                         state_ref if kind == "lstm" else (state_ref,), strict=True):  # fmt: skip
        torch.testing.assert_close(got, want, atol=tol, rtol=tol)


@pytest.mark.parametrize("kind,layers,bidi", CASES)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("path", ["fused", "step"])
def test_matches_torch_padded(kind, layers, bidi, dtype, tol, path):
    ours, ref = pair(kind, 3, 6, layers, bidi, dtype)
    lengths = torch.tensor([5, 2, 7, 1])
    x = torch.randn(4, 7, 3, dtype=dtype)
    if path == "step":
        y, state, _ = ours(x, lengths=lengths, return_states=True)  # the trajectory forces the step loop
    else:
        y, state = ours(x, lengths=lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, state_ref = ref(packed)
    y_ref, _ = pad_packed_sequence(out, batch_first=True, total_length=7)
    torch.testing.assert_close(y, y_ref, atol=tol, rtol=tol)
    got = to_torch_layout(state, kind)
    got, want = (got, state_ref) if kind == "lstm" else ((got,), (state_ref,))
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=tol, rtol=tol)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_step_path_equals_fused_path_with_initial_state(kind):
    model = mnemonet.build(kind, input_size=4, hidden_size=8).double()
    x = torch.randn(3, 6, 4, dtype=torch.float64)
    s0 = model.unflatten_state(torch.randn(3, model.state_size, dtype=torch.float64))
    y_fast, s_fast = model(x, s0)
    y_step, _, traj = model(x, s0, return_states=True)
    torch.testing.assert_close(y_fast, y_step, atol=1e-12, rtol=0)
    torch.testing.assert_close(model.flatten_state(s_fast), traj[:, -1], atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_single_bias_is_torch_with_zero_hidden_bias(kind):
    ours = mnemonet.build(kind, input_size=3, hidden_size=5, single_bias=True).double()
    ref = TORCH[kind](3, 5, batch_first=True).double()
    cell = ours.cell
    with torch.no_grad():
        ref.weight_ih_l0.copy_(cell.weight_ih)
        ref.weight_hh_l0.copy_(cell.weight_hh)
        ref.bias_ih_l0.copy_(cell.bias)
        ref.bias_hh_l0.zero_()
    assert not hasattr(cell, "bias_hh")
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    torch.testing.assert_close(ours(x)[0], ref(x)[0])
    torch.testing.assert_close(ours(x, return_states=True)[0], ref(x)[0])


def test_softsign_rnn_against_a_loop():
    model = mnemonet.build("rnn", input_size=3, hidden_size=4, nonlinearity="softsign").double()
    c = model.cell
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    h = torch.zeros(2, 4, dtype=torch.float64)
    for t in range(5):
        a = x[:, t] @ c.weight_ih.T + c.bias_ih + h @ c.weight_hh.T + c.bias_hh
        h = a / (1 + a.abs())
    y, state = model(x)
    torch.testing.assert_close(state.h, h)
    torch.testing.assert_close(y[:, -1], h)


def test_batch_first_false_transposes_only_layout():
    bf = mnemonet.build("gru", input_size=3, hidden_size=4)
    tf = mnemonet.build("gru", input_size=3, hidden_size=4, batch_first=False)
    tf.load_state_dict(bf.state_dict())
    x = torch.randn(2, 6, 3)
    y1, s1 = bf(x)
    y2, s2 = tf(x.transpose(0, 1))
    torch.testing.assert_close(y1, y2.transpose(0, 1))
    torch.testing.assert_close(s1.h, s2.h)
    _, _, traj = tf(x.transpose(0, 1), return_states=True)
    assert traj.shape == (6, 2, 4)


def test_gradients_match_torch():
    ours, ref = pair("lstm", 3, 4, 2, True, torch.float64)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    ours(x)[0].square().sum().backward()
    ref(x_ref)[0].square().sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    # parameters come in the same order as torch's (layer, direction, w_ih, w_hh, b_ih, b_hh)
    ours_p, ref_p = list(ours.named_parameters()), list(ref.named_parameters())
    assert len(ours_p) == len(ref_p) == 16
    for (name, p), (ref_name, q) in zip(ours_p, ref_p, strict=True):
        assert name.rsplit(".", 1)[1] == ref_name.split("_l")[0]
        torch.testing.assert_close(p.grad, q.grad, msg=f"{name} vs {ref_name}")
