"""Gradient clipping by global norm, the standard guard against exploding gradients in BPTT.

Pascanu, Mikolov & Bengio (2013, "On the difficulty of training recurrent neural networks",
Algorithm 1): treat all gradients as one vector Δw with norm ‖Δw‖ = √(Σ_k ‖Δw_k‖²); if
‖Δw‖ > Δmax, rescale every gradient by the same factor, Δw ← Δw · Δmax / ‖Δw‖, which keeps the
update's direction and caps its length at Δmax.
"""

from __future__ import annotations

import math

import numpy as np

from mnemonet.reference._checks import check_real


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """‖Δw‖ = √(Σ_k Σ_i (Δw_k)_i²) over every array in ``grads``."""
    if not isinstance(grads, dict):
        raise ValueError(f"grads: expected a dict of arrays, got {type(grads).__name__}")
    return math.sqrt(sum(float(np.sum(np.square(g))) for g in grads.values()))


def clip_by_global_norm(grads: dict[str, np.ndarray], max_norm: float) -> tuple[dict[str, np.ndarray], float]:
    """Rescale all gradients together so their global norm is at most Δmax.

    Args:
        grads: name -> gradient array.
        max_norm: Δmax > 0.

    Returns:
        ``(clipped, norm)``: new arrays Δw · min(1, Δmax / ‖Δw‖) with the same keys, and ‖Δw‖ before clipping.
    """
    check_real(max_norm, "max_norm", low=0.0, low_open=True)
    norm = global_norm(grads)
    scale = max_norm / norm if norm > max_norm else 1.0
    return {k: g * scale for k, g in grads.items()}, norm
