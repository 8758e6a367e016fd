"""Hand-built scenarios whose answers are known in closed form, for each reference layer."""

from __future__ import annotations

import numpy as np

from mnemonet.reference import GRU, LSTM, ElmanRNN, sigmoid


def zero_params(layer) -> None:
    for p in layer.params.values():
        p[...] = 0.0


def test_relu_rnn_with_identity_recurrence_sums_its_inputs() -> None:
    """W_hh = I, W_ih = I, no bias, nonnegative inputs: h_t = h_0 + Σ_{s<=t} x_s, and ∂h_T/∂x_s = 1."""
    rnn = ElmanRNN(3, 3, nonlinearity="relu", rng=0)
    zero_params(rnn)
    rnn.params["weight_ih"][...] = np.eye(3)
    rnn.params["weight_hh"][...] = np.eye(3)
    x = np.abs(np.random.default_rng(0).normal(size=(2, 5, 3)))
    h0 = np.ones((2, 3))
    y, h = rnn.forward(x, h0)
    np.testing.assert_allclose(y, h0[:, None] + np.cumsum(x, axis=1), rtol=1e-14)
    np.testing.assert_array_equal(h, y[:, -1])
    dx = rnn.backward(None, np.ones((2, 3)))
    np.testing.assert_array_equal(dx, np.ones_like(x))
    np.testing.assert_array_equal(rnn.dh0, np.ones((2, 3)))


def test_softsign_rnn_one_step() -> None:
    """One unit, one step: h = softsign(w x + u h0 + b) = a / (1 + |a|)."""
    rnn = ElmanRNN(1, 1, nonlinearity="softsign", rng=0)
    rnn.load_params(
        {
            "weight_ih": np.array([[2.0]]),
            "weight_hh": np.array([[0.5]]),
            "bias_ih": np.array([0.25]),
            "bias_hh": np.array([-0.75]),
        }
    )
    _, h = rnn.forward(np.array([[[1.5]]]), np.array([[-2.0]]))
    a = 2.0 * 1.5 + 0.5 * -2.0 + 0.25 - 0.75  # = 1.5
    assert h[0, 0] == a / (1.0 + abs(a))  # 0.6
    rnn.backward(None, np.array([[1.0]]))
    assert np.isclose(rnn.grads["weight_ih"][0, 0], 1.5 / (1.0 + a) ** 2, rtol=1e-15)
    assert np.isclose(rnn.dh0[0, 0], 0.5 / (1.0 + a) ** 2, rtol=1e-15)


def test_lstm_with_zero_weights_halves_its_cell() -> None:
    """All weights zero: i = f = o = σ(0) = 1/2, g = 0, so c_t = c_0 / 2^t and h_t = tanh(c_t) / 2."""
    lstm = LSTM(2, 3, rng=0)
    zero_params(lstm)
    c0 = np.array([[1.0, -2.0, 0.5]])
    y, (h, c) = lstm.forward(np.ones((1, 4, 2)), c0=c0)
    t = np.arange(1, 5)[None, :, None]
    np.testing.assert_allclose(c, c0 / 16, rtol=1e-15)
    np.testing.assert_allclose(y, np.tanh(c0[:, None] / 2.0**t) / 2, rtol=1e-15)
    np.testing.assert_allclose(h, np.tanh(c0 / 16) / 2, rtol=1e-15)
    lstm.backward(None, dc_T=np.ones((1, 3)))
    np.testing.assert_allclose(lstm.dc0, np.full((1, 3), 1 / 16), rtol=1e-15)  # ∂c_T/∂c_0 = Π f_t


def test_lstm_forget_gate_bias_keeps_memory() -> None:
    """A large forget bias and closed input gate carry c_0 unchanged across many steps (the CEC)."""
    lstm = LSTM(1, 1, rng=0)
    zero_params(lstm)
    lstm.params["bias_hh"][...] = [-40.0, 40.0, 0.0, 0.0]  # i -> 0, f -> 1
    _, (_, c) = lstm.forward(np.zeros((1, 50, 1)), c0=np.array([[0.7]]))
    assert abs(c[0, 0] - 0.7) < 1e-12


def test_gru_with_zero_weights_halves_its_state() -> None:
    """All weights zero: r = z = 1/2 and n = tanh(0 + r·0) = 0, so h_t = h_{t-1} / 2."""
    gru = GRU(2, 3, rng=0)
    zero_params(gru)
    h0 = np.array([[1.0, -3.0, 0.25]])
    y, h = gru.forward(np.ones((1, 3, 2)), h0)
    np.testing.assert_allclose(y, h0[:, None] / np.array([2.0, 4.0, 8.0])[None, :, None], rtol=1e-15)
    np.testing.assert_allclose(h, h0 / 8, rtol=1e-15)
    gru.backward(None, np.ones((1, 3)))
    np.testing.assert_allclose(gru.dh0, np.full((1, 3), 1 / 8), rtol=1e-15)


def test_gru_reset_gate_acts_after_the_recurrent_matmul() -> None:
    """torch's GRU form: n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)); b_hn is scaled by r, b_in is not."""
    gru = GRU(1, 1, rng=0)
    zero_params(gru)
    gru.params["bias_ih"][...] = [0.0, -50.0, 0.3]  # z -> 0, so h_1 = n_1
    gru.params["bias_hh"][...] = [1.0, 0.0, 0.8]  # r = σ(1)
    _, h = gru.forward(np.zeros((1, 1, 1)))
    assert np.isclose(h[0, 0], np.tanh(0.3 + sigmoid(np.array(1.0)) * 0.8), rtol=1e-14, atol=0)
