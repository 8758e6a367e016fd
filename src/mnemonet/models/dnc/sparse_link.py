"""The DNC's sparse temporal link matrix: K entries per row, so memory grows as N·K instead of N².

Graves et al. (2016, Methods, "Sparse link matrix") note that the N × N link matrix is the DNC's only
quadratic cost and approximate it by a sparse one. Here each row i of L keeps at most K (column, value)
pairs, stored as two `[B, Hw, N, K]` tensors. One update follows the dense equation
L_t[i, j] = (1 − w[i] − w[j]) L_{t−1}[i, j] + w[i] p̂_{t−1}[j] with two approximations: the precedence
p̂_{t−1} keeps only its K largest entries (so each row gains at most K candidates), and each row then keeps
its K largest values. With K ≥ N nothing is dropped and the result equals the dense :func:`link` exactly.
Forward weightings gather (L w); backward weightings scatter-add (L^T w); neither builds an N × N tensor.

This is a top-K approximation of the dense update (the option ``link_top_k``), not the sparse access memory
of Rae et al. (2016, SAM/SDNC), which sparsifies the write and precedence weightings themselves (K non-zeros,
renormalised) so that the link is built in O(N·K) without ever forming a dense row.

Column indices live in the state as floating-point numbers (exact up to 2^24 slots in float32), so the
state flattens into one float vector like every other mnemonet state.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sparse_link(
    prev_values: Tensor, prev_indices: Tensor, write_weights: Tensor, prev_precedence: Tensor
) -> tuple[Tensor, Tensor]:
    """Sparse temporal link update: the dense L_t of :func:`~mnemonet.models.dnc.addressing.link`, top-K per row.

    Args:
        prev_values: values of L_{t−1}, `[B, Hw, N, K]` (zero for unused entries).
        prev_indices: their columns, `[B, Hw, N, K]`, integer-valued (any dtype).
        write_weights: w^w_t, `[B, Hw, N]`.
        prev_precedence: p_{t−1}, `[B, Hw, N]`.

    Returns:
        (values, indices) of L_t, `[B, Hw, N, K]` each; ``indices`` has the dtype of ``prev_indices``.
    """
    B, Hw, N, K = prev_values.shape
    idx = prev_indices.long()
    w = write_weights
    w_at_col = w.gather(-1, idx.reshape(B, Hw, N * K)).reshape(B, Hw, N, K)  # w[j] for each kept entry
    old = (1.0 - w.unsqueeze(-1) - w_at_col) * prev_values  # (B, Hw, N, K)
    p_val, p_col = prev_precedence.topk(K, dim=-1)  # p̂: K largest precedence entries, (B, Hw, K)
    new = w.unsqueeze(-1) * p_val.unsqueeze(-2)  # (B, Hw, N, K): w[i] p̂[j] for the K candidate columns
    same = idx.unsqueeze(-1) == p_col[:, :, None, None, :]  # (B, Hw, N, K_old, K_new)
    new = new + (old.unsqueeze(-1) * same).sum(-2)  # an old entry in a candidate column joins it
    old = old * ~same.any(-1)
    rows = torch.arange(N, device=w.device).view(1, 1, N, 1)
    new = new * (p_col.unsqueeze(-2) != rows)  # zero diagonal
    values = torch.cat([old, new], dim=-1)  # (B, Hw, N, 2K)
    columns = torch.cat([idx, p_col.unsqueeze(-2).expand(B, Hw, N, K)], dim=-1)  # (B, Hw, N, 2K)
    values, pos = values.topk(K, dim=-1)
    return values, columns.gather(-1, pos).to(prev_indices.dtype)


def sparse_directional_weights(values: Tensor, indices: Tensor, prev_read_weights: Tensor) -> tuple[Tensor, Tensor]:
    """Forward and backward weightings f = L_t w^r_{t−1} and b = L_t^T w^r_{t−1} from a sparse L_t.

    Args:
        values: `[B, Hw, N, K]` entries of L_t.
        indices: `[B, Hw, N, K]` their columns (integer-valued, any dtype).
        prev_read_weights: w^r_{t−1}, `[B, R, N]`.

    Returns:
        (f, b), each `[B, Hw, R, N]`.
    """
    B, Hw, N, K = values.shape
    R = prev_read_weights.shape[1]
    idx = indices.long().reshape(B, Hw, 1, N * K).expand(B, Hw, R, N * K)  # (B, Hw, R, N·K)
    w = prev_read_weights.unsqueeze(1).expand(B, Hw, R, N)  # (B, Hw, R, N)
    w_at_col = w.gather(-1, idx).reshape(B, Hw, R, N, K)  # w[j] for every entry (i, j)
    forward = (values.unsqueeze(2) * w_at_col).sum(-1)  # (B, Hw, R, N): f[i] = Σ_k L[i, j_k] w[j_k]
    src = (values.unsqueeze(2) * w.unsqueeze(-1)).reshape(B, Hw, R, N * K)  # L[i, j] w[i]
    backward = torch.zeros_like(w).scatter_add(-1, idx, src)  # (B, Hw, R, N): b[j] = Σ_i L[i, j] w[i]
    return forward, backward


def densify(values: Tensor, indices: Tensor) -> Tensor:
    """The dense `[B, Hw, N, N]` link matrix of a sparse one (for tests and plots)."""
    B, Hw, N, _ = values.shape
    dense = torch.zeros(B, Hw, N, N, dtype=values.dtype, device=values.device)
    return dense.scatter_add(-1, indices.long(), values)
