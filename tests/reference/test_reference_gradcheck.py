"""Finite-difference checks of every hand-written backward pass, and of the checker itself."""

from __future__ import annotations

import numpy as np
import pytest

from mnemonet.reference import (
    GRU,
    LSTM,
    ElmanRNN,
    Linear,
    SequenceModel,
    gradcheck,
    numerical_gradient,
    relative_error,
)

TOL = 1e-6  # central differences (ε = 1e-5) agree to ~1e-7 at worst on these shapes


def test_numerical_gradient_of_a_known_function() -> None:
    """L = Σ x³ + Π x: ∂L/∂x_i = 3 x_i² + Π_{j≠i} x_j; x is restored bit for bit."""
    x = np.array([[0.3, -1.2], [2.0, 0.7]])
    before = x.copy()
    num = numerical_gradient(lambda: float(np.sum(x**3) + np.prod(x)), x)
    exact = 3 * x**2 + np.prod(x) / x
    assert relative_error(exact, num) < 1e-8
    np.testing.assert_array_equal(x, before)


def test_checker_flags_a_wrong_gradient() -> None:
    """A gradient off by 1% in one entry, or with a transposed block, fails the check."""
    x = np.array([0.5, -0.25, 1.5])
    exact = 2 * x
    assert gradcheck(lambda: float(np.sum(x**2)), {"x": x}, {"x": exact})["x"] < 1e-8
    wrong = exact.copy()
    wrong[1] *= 1.01
    assert gradcheck(lambda: float(np.sum(x**2)), {"x": x}, {"x": wrong})["x"] > 5e-3


def test_relative_error_floor_and_shapes() -> None:
    assert relative_error(np.array([1e-20]), np.array([0.0])) < 1e-11  # below the floor: absolute
    assert relative_error(np.array([2.0]), np.array([1.0])) == 0.5
    assert relative_error(np.zeros(0), np.zeros(0)) == 0.0
    with pytest.raises(ValueError, match="numeric: expected shape"):
        relative_error(np.zeros(2), np.zeros(3))


def test_numerical_gradient_rejects_a_copy() -> None:
    x = np.zeros((3, 4)).T  # not C-contiguous: reshape(-1) would copy, perturbations would be lost
    with pytest.raises(ValueError, match="x: expected a contiguous array"):
        numerical_gradient(lambda: 0.0, x)
    with pytest.raises(ValueError, match="x: expected a float64 array"):
        numerical_gradient(lambda: 0.0, np.zeros(3, dtype=np.float32))


@pytest.mark.parametrize("kind", ["rnn-tanh", "rnn-relu", "rnn-softsign", "lstm", "gru"])
@pytest.mark.parametrize(("B", "T", "D", "H"), [(2, 3, 2, 3), (1, 4, 3, 2)])
def test_layer_gradients_by_finite_differences(kind: str, B: int, T: int, D: int, H: int) -> None:
    rng = np.random.default_rng(B * 100 + T * 10 + D + H)
    if kind.startswith("rnn"):
        layer = ElmanRNN(D, H, nonlinearity=kind.split("-")[1], rng=rng)
    else:
        layer = (LSTM if kind == "lstm" else GRU)(D, H, rng=rng)
    layer.load_params({k: rng.normal(0.0, 0.7, size=v.shape) for k, v in layer.params.items()})
    x, h0, c0 = rng.normal(size=(B, T, D)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    R, S, U = rng.normal(size=(B, T, H)), rng.normal(size=(B, H)), rng.normal(size=(B, H))
    is_lstm = kind == "lstm"

    def loss() -> float:
        if is_lstm:
            y, (h, c) = layer.forward(x, h0, c0)
            return float(np.sum(y * R) + np.sum(h * S) + np.sum(c * U))
        y, h = layer.forward(x, h0)
        return float(np.sum(y * R) + np.sum(h * S))

    loss()
    dx = layer.backward(R, S, U) if is_lstm else layer.backward(R, S)
    grads = {**{k: v.copy() for k, v in layer.grads.items()}, "x": dx, "h0": layer.dh0}
    inputs = {**layer.params, "x": x, "h0": h0}
    if is_lstm:
        grads["c0"], inputs["c0"] = layer.dc0, c0
    errors = gradcheck(loss, inputs, grads)
    assert max(errors.values()) < TOL, errors


def test_linear_gradients_by_finite_differences() -> None:
    rng = np.random.default_rng(3)
    lin = Linear(4, 3, rng=rng)
    lin.params["bias"][...] = rng.normal(size=3)
    x, R = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 3))

    def loss() -> float:
        return float(np.sum(lin.forward(x) * R))

    loss()
    dx = lin.backward(R)
    errors = gradcheck(loss, {**lin.params, "x": x}, {**{k: v.copy() for k, v in lin.grads.items()}, "x": dx})
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_model_gradients_by_finite_differences(cell: str) -> None:
    rng = np.random.default_rng(11)
    model = SequenceModel(cell, 3, 4, 3, nonlinearity="softsign", rng=rng)
    x = rng.normal(size=(2, 4, 3))
    targets = rng.integers(0, 3, size=(2, 4))
    mask = np.array([[0, 1, 1, 1], [1, 0, 1, 1]], dtype=bool)
    _, grads = model.loss_and_grads(x, targets, mask)
    analytic = {k: v.copy() for k, v in grads.items()}
    errors = gradcheck(lambda: model.loss_and_grads(x, targets, mask)[0], model.params, analytic)
    assert max(errors.values()) < TOL, errors
