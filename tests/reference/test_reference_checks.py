"""Bad input raises ValueError naming the argument and the expected shape or range."""

from __future__ import annotations

import numpy as np
import pytest

from mnemonet.reference import GRU, LSTM, ElmanRNN, Linear, SequenceModel


@pytest.mark.parametrize("cls", [ElmanRNN, LSTM, GRU])
def test_layer_argument_checks(cls) -> None:
    layer = cls(3, 4, rng=0)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, T, 3\), got \(2, 5\)"):
        layer.forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"x: expected shape \(B, T, 3\), got \(2, 5, 4\)"):
        layer.forward(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="x: expected a floating-point array, got dtype int64"):
        layer.forward(np.zeros((2, 5, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"x: expected an array of shape \(B, T, 3\), got list"):
        layer.forward([[[0.0, 0.0, 0.0]]])
    with pytest.raises(ValueError, match=r"x: expected at least one time step, got shape \(2, 0, 3\)"):
        layer.forward(np.zeros((2, 0, 3)))
    with pytest.raises(ValueError, match=r"h0: expected shape \(2, 4\), got \(3, 4\)"):
        layer.forward(np.zeros((2, 5, 3)), np.zeros((3, 4)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.zeros((2, 5, 4)))
    layer.forward(np.zeros((2, 5, 3), dtype=np.float32))  # other float dtypes are promoted to float64
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 5, 4\), got \(2, 4, 4\)"):
        layer.backward(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"dh_T: expected shape \(2, 4\), got \(4,\)"):
        layer.backward(None, np.zeros(4))
    with pytest.raises(ValueError, match="input_size: expected an integer > 0, got 0"):
        cls(0, 4)
    with pytest.raises(ValueError, match=r"hidden_size: expected an integer > 0, got 2\.0"):
        cls(3, 2.0)
    with pytest.raises(ValueError, match=r"init: expected one of \['xavier', 'uniform'\], got 'orthogonal'"):
        cls(3, 4, init="orthogonal")
    with pytest.raises(ValueError, match=r"params: expected keys \['bias_hh', 'bias_ih'"):
        layer.load_params({"weight_ih": np.zeros(1)})
    good = {k: np.zeros_like(v) for k, v in layer.params.items()}
    good["weight_hh"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"params\['weight_hh'\]: expected shape"):
        layer.load_params(good)


def test_lstm_cell_state_checks() -> None:
    lstm = LSTM(3, 4, rng=0)
    with pytest.raises(ValueError, match=r"c0: expected shape \(2, 4\), got \(2, 5\)"):
        lstm.forward(np.zeros((2, 5, 3)), c0=np.zeros((2, 5)))
    lstm.forward(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"dc_T: expected shape \(2, 4\), got \(1, 4\)"):
        lstm.backward(None, dc_T=np.zeros((1, 4)))


def test_linear_and_model_checks() -> None:
    lin = Linear(3, 2, rng=0)
    with pytest.raises(ValueError, match=r"x: expected shape \(\?, 3\), got \(4, 2\)"):
        lin.forward(np.zeros((4, 2)))
    with pytest.raises(RuntimeError, match=r"Linear\.backward called before forward"):
        lin.backward(np.zeros((4, 2)))
    lin.forward(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(5, 2\), got \(5, 3\)"):
        lin.backward(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"cell: expected one of \['rnn', 'lstm', 'gru'\], got 'transformer'"):
        SequenceModel("transformer", 2, 3, 2)
    model = SequenceModel("gru", 2, 3, 2, rng=0)
    with pytest.raises(ValueError, match=r"targets: expected values in \[0, 1\]"):
        model.loss_and_grads(np.zeros((1, 3, 2)), np.full((1, 3), 2))
    assert repr(model) == "SequenceModel(GRU(2, 3), Linear(3, 2))"
    assert repr(ElmanRNN(2, 3, nonlinearity="softsign")) == "ElmanRNN(2, 3, nonlinearity='softsign')"


def test_zero_grad_and_overwrite() -> None:
    """backward overwrites grads (it does not accumulate); zero_grad clears them."""
    rng = np.random.default_rng(0)
    rnn = ElmanRNN(2, 3, rng=rng)
    x = rng.normal(size=(1, 4, 2))
    rnn.forward(x)
    rnn.backward(np.ones((1, 4, 3)))
    first = {k: v.copy() for k, v in rnn.grads.items()}
    rnn.backward(np.ones((1, 4, 3)))
    for k in first:
        np.testing.assert_array_equal(rnn.grads[k], first[k])
    rnn.zero_grad()
    assert all(not g.any() for g in rnn.grads.values())
