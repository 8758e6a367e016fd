"""Softmax and the softmax cross-entropy loss with its gradient, for per-step classification.

For logits z over V classes, softmax p_k = e^{z_k} / Σ_j e^{z_j} (computed after subtracting max z,
which leaves it unchanged), and the cross-entropy of target class y is ℓ = -log p_y
= log Σ_j e^{z_j} - z_y. Averaged over the N = Σ m positions that the mask m keeps,
L = (1/N) Σ_n m_n ℓ_n and ∂L/∂z_n = m_n (p_n - onehot(y_n)) / N. exp(L) is the perplexity.
"""

from __future__ import annotations

import numpy as np

from mnemonet.reference._checks import check_array


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log p_k = z_k - max z - log Σ_j e^{z_j - max z} over the last axis: `[..., V]` -> `[..., V]`."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(z: np.ndarray) -> np.ndarray:
    """p_k = e^{z_k} / Σ_j e^{z_j} over the last axis: `[..., V]` -> `[..., V]`."""
    return np.exp(log_softmax(z))


def softmax_cross_entropy(
    logits: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer targets under softmax(logits), and its gradient.

    Args:
        logits: `[..., V]` unnormalised scores z (e.g. `[B, T, V]`).
        targets: `[...]` integer classes in [0, V), the shape of ``logits`` without its last axis.
        mask: `[...]` bool or 0/1 weights m (positions with m = 0 do not count), or None for all.

    Returns:
        ``(L, dlogits)``: L = (1/N) Σ m_n (-log p_{n, y_n}) with N = Σ m_n, and ∂L/∂z `[..., V]`.
    """
    if not isinstance(logits, np.ndarray) or logits.ndim < 1:
        raise ValueError(f"logits: expected an array of shape (..., V), got {type(logits).__name__}")
    logits = check_array(logits, "logits", (None,) * logits.ndim)
    lead, V = logits.shape[:-1], logits.shape[-1]
    if not isinstance(targets, np.ndarray) or targets.shape != lead:
        got = targets.shape if isinstance(targets, np.ndarray) else type(targets).__name__
        raise ValueError(f"targets: expected an integer array of shape {lead}, got {got}")
    if not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets: expected integers, got dtype {targets.dtype}")
    if targets.size and (targets.min() < 0 or targets.max() >= V):
        raise ValueError(f"targets: expected values in [0, {V - 1}], got min {targets.min()} and max {targets.max()}")
    if mask is None:
        weights = np.ones(lead)
    else:
        if not isinstance(mask, np.ndarray) or mask.shape != lead:
            got = mask.shape if isinstance(mask, np.ndarray) else type(mask).__name__
            raise ValueError(f"mask: expected an array of shape {lead}, got {got}")
        weights = mask.astype(np.float64)
    count = weights.sum()
    if count <= 0:
        raise ValueError("mask: expected at least one position with a nonzero weight")
    logp = log_softmax(logits)
    nll = -np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]  # (...): ℓ_n = -log p_{n, y_n}
    loss = float((weights * nll).sum() / count)
    dlogits = np.exp(logp)  # p
    np.put_along_axis(dlogits, targets[..., None], np.take_along_axis(dlogits, targets[..., None], -1) - 1.0, -1)
    dlogits *= (weights / count)[..., None]  # m_n (p_n - onehot(y_n)) / N
    return loss, dlogits
