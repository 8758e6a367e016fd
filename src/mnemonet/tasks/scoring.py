"""Losses and scores shared by the tasks: step-weighted cross-entropy for classes, masked BCE for bits.

Every task scores a `[B, T, C]` logit tensor against its batch's targets with a `[B, T]` weight per
step (0 = not scored). Classification tasks use the weighted mean of per-step cross-entropy; bit tasks
the weighted mean of per-bit binary cross-entropy and count wrong bits on scored steps only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mnemonet._checks import check_tensor


def check_logits(logits: object, batch_x: Tensor, output_size: int) -> Tensor:
    """Raise a ValueError unless ``logits`` is `[B, T, output_size]` with the batch's B and T."""
    B, T = batch_x.shape[0], batch_x.shape[1]
    return check_tensor(logits, "logits", (B, T, output_size))


def step_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Per-step cross-entropy in nats: `[B, T, C]` logits, `[B, T]` classes -> `[B, T]`."""
    B, T, C = logits.shape
    flat = F.cross_entropy(logits.reshape(B * T, C), target.reshape(B * T), reduction="none")  # (B*T,)
    return flat.reshape(B, T)  # (B, T)


def weighted_mean(values: Tensor, weight: Tensor) -> Tensor:
    """``sum(weight * values) / sum(weight)`` over `[B, T]` (0 when nothing is weighted)."""
    weight = weight.to(values.dtype)
    total = weight.sum()
    return (values * weight).sum() / total.clamp_min(torch.finfo(values.dtype).tiny)


def weighted_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Weighted mean cross-entropy over steps: ``Σ w_bt CE_bt / Σ w_bt``.

    Args:
        logits: `[B, T, C]`.
        target: `[B, T]` int64 classes.
        weight: `[B, T]` step weights.
    """
    return weighted_mean(step_cross_entropy(logits, target.to(logits.device)), weight.to(logits.device))


def masked_accuracy(logits: Tensor, target: Tensor, mask: Tensor) -> float:
    """Share of the steps where ``mask`` is true whose argmax equals ``target`` (nan when none)."""
    mask = mask.to(logits.device)
    n = int(mask.sum())
    if n == 0:
        return float("nan")
    hits = (logits.argmax(-1) == target.to(logits.device)) & mask
    return float(hits.sum()) / n


def bits_loss(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Mean binary cross-entropy per scored bit: ``Σ_bt w_bt Σ_c BCE_btc / (C Σ_bt w_bt)``.

    Args:
        logits: `[B, T, C]` bit logits.
        target: `[B, T, C]` bits in {0, 1}.
        weight: `[B, T]` step weights.
    """
    per_bit = F.binary_cross_entropy_with_logits(logits, target.to(logits), reduction="none")  # (B, T, C)
    return weighted_mean(per_bit.mean(-1), weight.to(logits.device))


def bit_errors(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Wrong bits per sequence on scored steps (``weight > 0``): logit > 0 predicts 1. Returns `[B]`."""
    wrong = (logits > 0) != (target.to(logits.device) > 0.5)  # (B, T, C)
    scored = (weight.to(logits.device) > 0)[..., None]  # (B, T, 1)
    return (wrong & scored).sum(dim=(1, 2))
