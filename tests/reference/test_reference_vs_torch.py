"""micrograd-style test: the NumPy layers and torch float64 autograd agree on values and every gradient."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnemonet.reference import GRU, LSTM, ElmanRNN, SequenceModel

torch.set_num_threads(1)

SHAPES = [(1, 1, 1, 1), (2, 5, 3, 4), (3, 7, 5, 2), (4, 3, 2, 6)]  # (B, T, D, H)
KINDS = ["rnn-tanh", "rnn-relu", "rnn-softsign", "lstm", "gru"]
TOL = 1e-8


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Normwise relative error ‖a - b‖∞ / ‖b‖∞ (b is torch's value)."""
    b = np.asarray(b)
    assert a.shape == b.shape
    scale = max(np.abs(b).max(), 1e-300)
    return float(np.abs(a - b).max() / scale)


def make_layer(kind: str, D: int, H: int, rng: np.random.Generator):
    if kind.startswith("rnn"):
        layer = ElmanRNN(D, H, nonlinearity=kind.split("-")[1], rng=rng)
    else:
        layer = (LSTM if kind == "lstm" else GRU)(D, H, rng=rng)
    # random biases too, so every parameter matters
    layer.load_params({k: rng.normal(0.0, 0.6, size=v.shape) for k, v in layer.params.items()})
    return layer


def torch_run(kind: str, params: dict[str, torch.Tensor], x, h0, c0):
    """torch.nn.RNN / LSTM / GRU with the given weights, or a torch autograd loop for softsign."""
    D, H = x.shape[2], h0.shape[1]
    if kind == "rnn-softsign":
        h, ys = h0, []
        for t in range(x.shape[1]):
            h = F.softsign(
                x[:, t] @ params["weight_ih"].T + params["bias_ih"] + h @ params["weight_hh"].T + params["bias_hh"]
            )
            ys.append(h)
        return torch.stack(ys, 1), (h,)
    if kind.startswith("rnn"):
        mod = torch.nn.RNN(D, H, nonlinearity=kind.split("-")[1], batch_first=True, dtype=torch.float64)
    else:
        mod = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(D, H, batch_first=True, dtype=torch.float64)
    # functional_call keeps our leaf tensors in the graph, so their .grad is filled
    tparams = {f"{k}_l0": v for k, v in params.items()}
    hx = (h0[None], c0[None]) if kind == "lstm" else h0[None]
    y, state = torch.func.functional_call(mod, tparams, (x, hx))
    if kind == "lstm":
        return y, (state[0][0], state[1][0])
    return y, (state[0],)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("B", "T", "D", "H"), SHAPES)
@pytest.mark.parametrize("given_state", [False, True])
def test_layer_matches_torch(kind: str, B: int, T: int, D: int, H: int, given_state: bool) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{kind}-{B}-{T}-{D}-{H}-{given_state}".encode()))
    layer = make_layer(kind, D, H, rng)
    x = rng.normal(size=(B, T, D))
    h0 = rng.normal(size=(B, H)) if given_state else np.zeros((B, H))
    c0 = rng.normal(size=(B, H)) if given_state else np.zeros((B, H))
    # L = Σ y ⊙ R + Σ h_T ⊙ S (+ Σ c_T ⊙ U): its gradients are dy = R, dh_T = S, dc_T = U
    R, S, U = rng.normal(size=(B, T, H)), rng.normal(size=(B, H)), rng.normal(size=(B, H))

    state_in = {"h0": h0 if given_state else None}
    if kind == "lstm":
        state_in["c0"] = c0 if given_state else None
    y, state = layer.forward(x, **state_in)
    h_T, c_T = state if kind == "lstm" else (state, None)
    dx = layer.backward(R, S, U) if kind == "lstm" else layer.backward(R, S)

    leaf = {k: torch.tensor(v, requires_grad=True) for k, v in layer.params.items()}
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    ty, tstate = torch_run(kind, leaf, tx, th0, tc0)
    loss = (ty * torch.tensor(R)).sum() + (tstate[0] * torch.tensor(S)).sum()
    if kind == "lstm":
        loss = loss + (tstate[1] * torch.tensor(U)).sum()
    loss.backward()

    assert rel_err(y, ty.detach().numpy()) < TOL
    assert rel_err(h_T, tstate[0].detach().numpy()) < TOL
    assert np.array_equal(y[:, -1], h_T)
    if kind == "lstm":
        assert rel_err(c_T, tstate[1].detach().numpy()) < TOL
        assert rel_err(layer.dc0, tc0.grad.numpy()) < TOL
    for name, p in leaf.items():
        assert rel_err(layer.grads[name], p.grad.numpy()) < TOL, name
    assert rel_err(dx, tx.grad.numpy()) < TOL
    assert rel_err(layer.dh0, th0.grad.numpy()) < TOL


@pytest.mark.parametrize("kind", ["rnn-tanh", "lstm", "gru"])
def test_backward_without_dy_or_final_state(kind: str) -> None:
    """dy=None (loss on the final state only) equals passing zeros."""
    rng = np.random.default_rng(1)
    layer = make_layer(kind, 3, 4, rng)
    x = rng.normal(size=(2, 4, 3))
    layer.forward(x)
    S = rng.normal(size=(2, 4))
    dx_none = layer.backward(None, S)
    g_none = {k: v.copy() for k, v in layer.grads.items()}
    dx_zero = layer.backward(np.zeros((2, 4, 4)), S)
    assert np.array_equal(dx_none, dx_zero)
    for k in g_none:
        assert np.array_equal(g_none[k], layer.grads[k])
    assert np.abs(dx_none).max() > 0


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_sequence_model_matches_torch(cell: str) -> None:
    """Full model (layer -> Linear -> masked mean cross-entropy): loss and all gradients."""
    rng = np.random.default_rng(7)
    B, T, D, H, V = 3, 6, 4, 5, 4
    model = SequenceModel(cell, D, H, V, rng=rng)
    for p in model.params.values():
        p[...] = rng.normal(0.0, 0.5, size=p.shape)
    x = rng.normal(size=(B, T, D))
    targets = rng.integers(0, V, size=(B, T))
    mask = rng.random((B, T)) < 0.7
    mask[0, 0] = True
    loss, grads = model.loss_and_grads(x, targets, mask)

    torch_cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn = torch_cls(D, H, batch_first=True, dtype=torch.float64)
    out = torch.nn.Linear(H, V, dtype=torch.float64)
    with torch.no_grad():
        for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(rnn, f"{k}_l0").copy_(torch.tensor(model.params[f"rnn.{k}"]))
        out.weight.copy_(torch.tensor(model.params["out.weight"]))
        out.bias.copy_(torch.tensor(model.params["out.bias"]))
    logits = out(rnn(torch.tensor(x))[0])
    nll = F.cross_entropy(logits.reshape(-1, V), torch.tensor(targets).reshape(-1), reduction="none")
    tmask = torch.tensor(mask, dtype=torch.float64).reshape(-1)
    tloss = (nll * tmask).sum() / tmask.sum()
    tloss.backward()

    assert abs(loss - tloss.item()) / abs(tloss.item()) < TOL
    for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        assert rel_err(grads[f"rnn.{k}"], getattr(rnn, f"{k}_l0").grad.numpy()) < TOL, k
    assert rel_err(grads["out.weight"], out.weight.grad.numpy()) < TOL
    assert rel_err(grads["out.bias"], out.bias.grad.numpy()) < TOL
