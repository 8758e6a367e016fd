"""Softmax cross-entropy: values and gradients against torch, masking, stability, argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnemonet.reference import gradcheck, log_softmax, softmax, softmax_cross_entropy

torch.set_num_threads(1)


def test_hand_computed_two_class_example() -> None:
    """z = (0, log 3): p = (1/4, 3/4); target 0 gives L = log 4 and ∂L/∂z = (1/4 - 1, 3/4)."""
    loss, d = softmax_cross_entropy(np.array([[0.0, np.log(3.0)]]), np.array([0]))
    assert np.isclose(loss, np.log(4.0), rtol=1e-15)
    np.testing.assert_allclose(d, [[-0.75, 0.75]], rtol=1e-15)


@pytest.mark.parametrize("shape", [(5,), (2, 7), (3, 4, 2)])
def test_matches_torch_cross_entropy(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    V = 6
    logits = rng.normal(0, 3, size=(*shape, V))
    targets = rng.integers(0, V, size=shape)
    loss, d = softmax_cross_entropy(logits, targets)
    tz = torch.tensor(logits, requires_grad=True)
    tl = F.cross_entropy(tz.reshape(-1, V), torch.tensor(targets).reshape(-1))
    tl.backward()
    assert abs(loss - tl.item()) <= 1e-12 * abs(tl.item())
    np.testing.assert_allclose(d, tz.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_mask_averages_over_kept_positions_only() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4))
    targets = rng.integers(0, 4, size=(2, 3))
    mask = np.array([[True, False, True], [False, False, True]])
    loss, d = softmax_cross_entropy(logits, targets, mask)
    kept, _ = softmax_cross_entropy(logits[mask], targets[mask])
    assert np.isclose(loss, kept, rtol=1e-14)
    assert np.all(d[~mask] == 0.0)
    errors = gradcheck(lambda: softmax_cross_entropy(logits, targets, mask)[0], {"z": logits}, {"z": d})
    assert errors["z"] < 1e-6


def test_large_logits_stay_finite() -> None:
    logits = np.array([[1e4, 0.0, -1e4], [800.0, 800.0, 0.0]])
    loss, d = softmax_cross_entropy(logits, np.array([1, 0]))
    assert np.isclose(loss, (1e4 + np.log(2.0)) / 2, rtol=1e-12)
    assert np.all(np.isfinite(d))
    np.testing.assert_allclose(softmax(logits).sum(-1), 1.0, rtol=1e-15)
    assert np.all(np.isfinite(log_softmax(logits)[0, :2]))


def test_bad_arguments_raise() -> None:
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"targets: expected values in \[0, 2\]"):
        softmax_cross_entropy(z, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"targets: expected an integer array of shape \(2,\)"):
        softmax_cross_entropy(z, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="targets: expected integers"):
        softmax_cross_entropy(z, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"mask: expected an array of shape \(2,\)"):
        softmax_cross_entropy(z, np.array([0, 1]), np.ones(3))
    with pytest.raises(ValueError, match="mask: expected at least one"):
        softmax_cross_entropy(z, np.array([0, 1]), np.zeros(2, dtype=bool))
    with pytest.raises(ValueError, match="logits: expected a floating-point array"):
        softmax_cross_entropy(np.zeros((2, 3), dtype=int), np.array([0, 1]))
