"""Xavier initialisation and the elementwise nonlinearities with their derivatives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnemonet.reference import (
    ACTIVATIONS,
    GRU,
    LSTM,
    ElmanRNN,
    as_generator,
    numerical_gradient,
    relative_error,
    softsign,
    xavier_bound,
    xavier_uniform,
)
from mnemonet.reference.rnn import NONLINEARITIES

torch.set_num_threads(1)


def test_xavier_bound_formula() -> None:
    assert xavier_bound(4, 6) == math.sqrt(6.0 / 10.0)
    assert xavier_bound(3, 3, gain=2.0) == 2.0 * 1.0


def test_xavier_uniform_range_and_variance() -> None:
    """U[-b, b] with b = √(6/(n_in + n_out)) has variance b²/3 = 2/(n_in + n_out)."""
    w = xavier_uniform((300, 500), rng=0)
    b = math.sqrt(6.0 / 800.0)
    assert w.shape == (300, 500)
    assert np.abs(w).max() <= b
    assert np.abs(w).max() > 0.99 * b
    assert abs(w.var() / (2.0 / 800.0) - 1.0) < 0.02
    assert abs(w.mean()) < 0.01 * b
    np.testing.assert_array_equal(w, xavier_uniform((300, 500), rng=np.random.default_rng(0)))  # seeded


@pytest.mark.parametrize(("cls", "G"), [(ElmanRNN, 1), (LSTM, 4), (GRU, 3)])
def test_layers_use_xavier_per_gate_block(cls, G: int) -> None:
    D, H = 7, 5
    layer = cls(D, H, rng=0)
    assert layer.params["weight_ih"].shape == (G * H, D)
    assert layer.params["weight_hh"].shape == (G * H, H)
    assert np.abs(layer.params["weight_ih"]).max() <= xavier_bound(D, H)
    assert np.abs(layer.params["weight_hh"]).max() <= xavier_bound(H, H)
    assert np.abs(layer.params["weight_ih"]).max() > 0.5 * xavier_bound(D, H)
    assert not layer.params["bias_ih"].any() and not layer.params["bias_hh"].any()
    uniform = cls(D, H, init="uniform", rng=0)
    assert np.abs(uniform.params["bias_hh"]).max() <= 1 / math.sqrt(H)
    assert uniform.params["bias_hh"].any()


def test_as_generator() -> None:
    g = np.random.default_rng(1)
    assert as_generator(g) is g
    assert as_generator(5).integers(1000) == np.random.default_rng(5).integers(1000)
    with pytest.raises(ValueError, match="rng: expected a numpy Generator"):
        as_generator("seed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape: expected a tuple \(n_out, n_in\)"):
        xavier_uniform((3,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fan_in: expected an integer > 0"):
        xavier_bound(0, 3)


def test_softsign_values_and_torch() -> None:
    a = np.array([-3.0, -0.5, 0.0, 1.0, 9.0])
    np.testing.assert_array_equal(softsign(a), [-0.75, -1 / 3, 0.0, 0.5, 0.9])
    np.testing.assert_allclose(softsign(a), F.softsign(torch.tensor(a)).numpy(), rtol=1e-15)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_from_output_matches_finite_differences(name: str) -> None:
    f, f_grad = ACTIVATIONS[name]
    a = np.array([-2.5, -0.7, -0.1, 0.2, 0.9, 3.0])  # away from relu's kink
    num = numerical_gradient(lambda: float(np.sum(f(a) * np.arange(1, 7))), a) / np.arange(1, 7)
    assert relative_error(f_grad(f(a)), num) < 1e-8


def test_sigmoid_is_stable_for_large_inputs() -> None:
    f, _ = ACTIVATIONS["sigmoid"]
    with np.errstate(all="raise"):
        y = f(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(y, [0.0, 0.5, 1.0])


def test_rnn_nonlinearity_choices() -> None:
    assert NONLINEARITIES == ("tanh", "relu", "softsign")
    with pytest.raises(ValueError, match=r"nonlinearity: expected one of \['tanh', 'relu', 'softsign'\]"):
        ElmanRNN(2, 3, nonlinearity="sigmoid")
