"""The sparse temporal link of the SDNC (Rae et al. 2016, the sparse DNC), built from K-sparse weightings.

The DNC's link L_t[i, j] = (1 − w_t[i] − w_t[j]) L_{t−1}[i, j] + w_t[i] p_{t−1}[j] and precedence
p_t = (1 − Σ_i w_t[i]) p_{t−1} + w_t (Graves et al. 2016) are dense N × N and N. The SDNC makes them sparse by
sparsifying the weightings they are built from: the write weighting ŵ_t and the precedence p̂_t keep their K
largest entries, renormalised to the weighting's total. Then a step adds at most K² entries ŵ_t[i] p̂_{t−1}[j]
and decays only the entries in the K written rows and columns.

Here the link is a list of at most C entries (row, column, value) per batch element, ``[B, C]`` each; after each
update the C largest are kept (C ≥ K² × the steps of a sequence drops nothing). A pair (i, j) may occupy two
entries (its value is their sum). Forward and backward weightings f = L w^r_{t−1}, b = L^T w^r_{t−1} are
computed entry by entry against the K non-zeros of each previous read weighting, O(C·K) per head, never an
N × N tensor. Where entries are merged (:func:`sparsify`) a `[B, ..., N]` scatter is used: O(N) with a small
constant, like SAM's usage scan.

Indices are int64 here; the state stores them as floats.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sparsify(values: Tensor, indices: Tensor, k: int, n: int) -> tuple[Tensor, Tensor]:
    """Merge entries of a sparse weighting, keep its K largest, rescale them to the weighting's total.

    Args:
        values: `[..., E]` non-negative entries.
        indices: `[..., E]` int64 slots (repeats are summed).
        k: K.
        n: N, the number of slots.

    Returns:
        (values `[..., K]`, int64 slots `[..., K]`): Σ values = Σ of the input values (0 where that is 0).
    """
    dense = torch.zeros(*values.shape[:-1], n, dtype=values.dtype, device=values.device)
    dense = dense.scatter_add(-1, indices, values)  # (..., N)
    top, slots = dense.topk(k, dim=-1)  # (..., K)
    total, kept = values.sum(-1, keepdim=True), top.sum(-1, keepdim=True)
    scale = torch.where(kept > 0, total / torch.where(kept > 0, kept, torch.ones_like(kept)), torch.zeros_like(kept))
    return top * scale, slots


def lookup(values: Tensor, indices: Tensor, at: Tensor) -> Tensor:
    """A sparse weighting's value at the slots ``at``: Σ_e values[e] [indices[e] = at[m]].

    Args:
        values, indices: `[..., E]` the weighting (int64 indices).
        at: `[..., M]` int64 slots.

    Returns:
        `[..., M]`.
    """
    match = (at.unsqueeze(-1) == indices.unsqueeze(-2)).to(values.dtype)  # (..., M, E)
    return (match * values.unsqueeze(-2)).sum(-1)


def sparse_precedence(
    prev_values: Tensor, prev_indices: Tensor, write_values: Tensor, write_indices: Tensor, n: int
) -> tuple[Tensor, Tensor]:
    """p̂_t = sparsify_K((1 − Σ_i ŵ_t[i]) p̂_{t−1} + ŵ_t) (the DNC's precedence on K-sparse weightings).

    Args:
        prev_values, prev_indices: p̂_{t−1}, `[B, K]` each.
        write_values, write_indices: ŵ_t, `[B, K]` each.
        n: N.

    Returns:
        p̂_t as (values, int64 indices), `[B, K]` each.
    """
    keep = 1.0 - write_values.sum(-1, keepdim=True)  # (B, 1)
    values = torch.cat([keep * prev_values, write_values], -1)  # (B, 2K)
    return sparsify(values, torch.cat([prev_indices, write_indices], -1), prev_values.shape[-1], n)


def sparse_link_update(
    values: Tensor,
    rows: Tensor,
    cols: Tensor,
    write_values: Tensor,
    write_indices: Tensor,
    prev_precedence: Tensor,
    prev_precedence_indices: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """L_t[i, j] = (1 − ŵ_t[i] − ŵ_t[j]) L_{t−1}[i, j] + ŵ_t[i] p̂_{t−1}[j], i ≠ j; the C largest entries kept.

    Args:
        values, rows, cols: L_{t−1}'s entries, `[B, C]` each (int64 rows and columns).
        write_values, write_indices: ŵ_t, `[B, K]` each.
        prev_precedence, prev_precedence_indices: p̂_{t−1}, `[B, K]` each.

    Returns:
        L_t's (values, rows, cols), `[B, C]` each.
    """
    B, C = values.shape
    K = write_values.shape[-1]
    decay = 1.0 - lookup(write_values, write_indices, rows) - lookup(write_values, write_indices, cols)  # (B, C)
    new = write_values.unsqueeze(-1) * prev_precedence.unsqueeze(-2)  # ŵ[i] p̂[j], (B, K, K)
    new_rows = write_indices.unsqueeze(-1).expand(B, K, K)
    new_cols = prev_precedence_indices.unsqueeze(-2).expand(B, K, K)
    new = new * (new_rows != new_cols)  # zero diagonal
    all_values = torch.cat([values * decay, new.reshape(B, K * K)], -1)  # (B, C + K²)
    all_rows = torch.cat([rows, new_rows.reshape(B, K * K)], -1)
    all_cols = torch.cat([cols, new_cols.reshape(B, K * K)], -1)
    kept, pos = all_values.topk(C, dim=-1)  # the C largest entries
    return kept, all_rows.gather(-1, pos), all_cols.gather(-1, pos)


def sparse_directional(
    values: Tensor, rows: Tensor, cols: Tensor, prev_read: Tensor, prev_read_indices: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Forward f = L_t w^r_{t−1} and backward b = L_t^T w^r_{t−1} weightings as entries, per read head.

    Args:
        values, rows, cols: L_t's entries, `[B, C]` each (int64 rows, columns).
        prev_read, prev_read_indices: w^r_{t−1}, `[B, R, K]` each.

    Returns:
        (f values, f slots, b values, b slots), `[B, R, C]` each: f[i] = Σ_j L[i, j] w[j] has an entry at each
        row i of L, b[j] = Σ_i L[i, j] w[i] one at each column j.
    """
    R = prev_read.shape[1]
    rows_r = rows.unsqueeze(1).expand(-1, R, -1)  # (B, R, C)
    cols_r = cols.unsqueeze(1).expand(-1, R, -1)
    forward = values.unsqueeze(1) * lookup(prev_read, prev_read_indices, cols_r)  # L[i, j] w[j] at i
    backward = values.unsqueeze(1) * lookup(prev_read, prev_read_indices, rows_r)  # L[i, j] w[i] at j
    return forward, rows_r, backward, cols_r
