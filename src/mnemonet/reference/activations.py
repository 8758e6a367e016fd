"""Elementwise nonlinearities of the reference layers, each with its derivative written from its output.

Backpropagation through time stores a layer's outputs, not its pre-activations, so every derivative
here is a function of ``y = f(a)``: tanh' = 1 - y², sigmoid' = y (1 - y), relu' = [y > 0] and
softsign' = (1 - |y|)². Softsign (Bergstra et al. 2009; Glorot & Bengio 2010) is tanh's polynomial
cousin: it saturates like 1/|a| instead of exponentially, so its gradient vanishes more slowly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mnemonet.reference._checks import check_choice


def sigmoid(a: np.ndarray) -> np.ndarray:
    """Logistic sigmoid σ(a) = 1 / (1 + e^{-a}), computed as (1 + tanh(a/2)) / 2 so it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def sigmoid_grad(y: np.ndarray) -> np.ndarray:
    """dσ/da from the output y = σ(a): σ'(a) = y (1 - y)."""
    return y * (1.0 - y)


def tanh(a: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent tanh(a) = (e^a - e^{-a}) / (e^a + e^{-a})."""
    return np.tanh(a)


def tanh_grad(y: np.ndarray) -> np.ndarray:
    """dtanh/da from the output y = tanh(a): tanh'(a) = 1 - y²."""
    return 1.0 - y * y


def softsign(a: np.ndarray) -> np.ndarray:
    """Softsign s(a) = a / (1 + |a|), with range (-1, 1)."""
    return a / (1.0 + np.abs(a))


def softsign_grad(y: np.ndarray) -> np.ndarray:
    """ds/da from the output y = s(a).

    s'(a) = 1 / (1 + |a|)², and since |y| = |a| / (1 + |a|) gives 1 + |a| = 1 / (1 - |y|),
    s'(a) = (1 - |y|)².
    """
    return (1.0 - np.abs(y)) ** 2


def relu(a: np.ndarray) -> np.ndarray:
    """Rectifier relu(a) = max(a, 0)."""
    return np.maximum(a, 0.0)


def relu_grad(y: np.ndarray) -> np.ndarray:
    """drelu/da from the output y = relu(a): 1 where y > 0, else 0 (the subgradient 0 at a = 0, as torch)."""
    return (y > 0.0).astype(y.dtype)


Activation = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]

ACTIVATIONS: dict[str, Activation] = {
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "softsign": (softsign, softsign_grad),
    "sigmoid": (sigmoid, sigmoid_grad),
}


def get_activation(name: str) -> Activation:
    """The pair ``(f, f_grad_from_output)`` for ``name`` in ``ACTIVATIONS``; ValueError otherwise."""
    check_choice(name, "nonlinearity", list(ACTIVATIONS))
    return ACTIVATIONS[name]
