"""Finite-difference gradient checking: compare a hand-written backward pass with central differences.

For a scalar loss L(w), the central difference (L(w + ε e_i) - L(w - ε e_i)) / (2ε) approximates
∂L/∂w_i with truncation error O(ε² L''') and round-off error O(u |L| / ε) (u ≈ 1.1e-16 in float64),
so ε ≈ u^{1/3} ≈ 1e-5 roughly balances the two (error ~1e-10 relative to the loss scale). The
agreement measure is the elementwise relative error |a - n| / max(|a|, |n|, floor), maximised over
all entries; the floor stops entries whose true gradient is (near) zero from dividing round-off by zero.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mnemonet.reference._checks import check_real, check_same_keys


def numerical_gradient(loss: Callable[[], float], x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Central-difference gradient of ``loss()`` with respect to the array ``x``.

    ``x`` is perturbed in place, one entry at a time, and restored exactly; ``loss`` must read it
    (e.g. a closure over a layer whose ``params`` hold ``x``).

    Args:
        loss: no-argument function returning the scalar L.
        x: float64 array of any shape.
        eps: step ε > 0.

    Returns:
        n with n_i = (L(x + ε e_i) - L(x - ε e_i)) / (2ε), the shape of ``x``.
    """
    check_real(eps, "eps", low=0.0, low_open=True)
    if not (isinstance(x, np.ndarray) and x.dtype == np.float64):
        raise ValueError(f"x: expected a float64 array (perturbed in place), got {type(x).__name__}")
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: (N,)
    if not np.shares_memory(flat, x):
        raise ValueError("x: expected a contiguous array so that it can be perturbed in place")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = float(loss())
        flat[i] = old - eps
        minus = float(loss())
        flat[i] = old
        gflat[i] = (plus - minus) / (2.0 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray, floor: float = 1e-8) -> float:
    """max_i |a_i - n_i| / max(|a_i|, |n_i|, floor); 0 for empty arrays."""
    a, n = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"numeric: expected shape {a.shape} like analytic, got {n.shape}")
    if a.size == 0:
        return 0.0
    denom = np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)
    return float(np.max(np.abs(a - n) / denom))


def gradcheck(
    loss: Callable[[], float],
    params: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    eps: float = 1e-5,
    floor: float = 1e-8,
) -> dict[str, float]:
    """Check analytic gradients of every array in ``params`` against central differences.

    Args:
        loss: no-argument function returning L for the current values of ``params``.
        params: name -> array the loss reads (perturbed in place and restored).
        grads: name -> analytic ∂L/∂params[name], computed beforehand at the unperturbed point.
        eps: finite-difference step.
        floor: see :func:`relative_error`.

    Returns:
        name -> max relative error; ``max(result.values())`` is the overall figure.
    """
    check_same_keys(grads, params)
    return {name: relative_error(grads[name], numerical_gradient(loss, p, eps), floor) for name, p in params.items()}
