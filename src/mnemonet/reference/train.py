"""One training step of a reference model: loss and gradients, clipping by global norm, optimiser update.

The loop every BPTT tutorial writes by hand, kept as one testable function so that scripts and tests
share it: (L, Δw) = model.loss_and_grads(x, y); Δw ← Δw · min(1, Δmax / ‖Δw‖); optimiser.step(w, Δw).
"""

from __future__ import annotations

import numpy as np

from mnemonet.reference.clip import clip_by_global_norm, global_norm
from mnemonet.reference.model import SequenceModel
from mnemonet.reference.optim import Optimizer


def train_step(
    model: SequenceModel,
    optimizer: Optimizer,
    x: np.ndarray,
    targets: np.ndarray,
    mask: np.ndarray | None = None,
    max_norm: float | None = None,
) -> tuple[float, float]:
    """Update ``model.params`` in place on one batch.

    Args:
        model: the model to train.
        optimizer: an :class:`Optimizer` (its state persists across calls).
        x: `[B, T, D]` inputs; targets: `[B, T]` classes; mask: `[B, T]` or None.
        max_norm: Δmax for clipping by global norm, or None for no clipping.

    Returns:
        ``(loss, grad_norm)``: the loss before the update and ‖Δw‖ before clipping.
    """
    loss, grads = model.loss_and_grads(x, targets, mask)
    if max_norm is None:
        norm = global_norm(grads)
    else:
        grads, norm = clip_by_global_norm(grads, max_norm)
    optimizer.step(model.params, grads)
    return loss, norm
