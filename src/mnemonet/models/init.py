"""Named initialisations for gate-stacked recurrent weights (torch layout: gates stacked along dim 0).

Each scheme acts gate block by gate block: a `[G*H, D]` weight is G blocks of `[H, D]`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

INPUT_INITS = ("default", "xavier")
RECURRENT_INITS = ("default", "orthogonal", "identity")


def default_uniform_(weight: Tensor, hidden_size: int) -> Tensor:
    """torch.nn's default: every entry ~ U(−1/√H, 1/√H)."""
    bound = 1.0 / math.sqrt(hidden_size)
    return nn.init.uniform_(weight, -bound, bound)


def xavier_blocks_(weight: Tensor, gates: int) -> Tensor:
    """Glorot & Bengio (2010) uniform per gate block: U(−a, a), a = √(6 / (fan_in + fan_out)).

    Args:
        weight: `[G*H, D]`; each `[H, D]` block has fan_in D and fan_out H.
    """
    with torch.no_grad():
        for block in weight.chunk(gates, 0):
            nn.init.xavier_uniform_(block)
    return weight


def orthogonal_blocks_(weight: Tensor, gates: int) -> Tensor:
    """Orthogonal `[H, H]` block per gate (Saxe et al. 2014), as used by the BN-LSTM and many RNN papers."""
    with torch.no_grad():
        for block in weight.chunk(gates, 0):
            nn.init.orthogonal_(block)
    return weight


def identity_blocks_(weight: Tensor, gates: int) -> Tensor:
    """Identity `[H, H]` block per gate (IRNN, Le et al. 2015: ReLU RNN with W_hh = I)."""
    with torch.no_grad():
        for block in weight.chunk(gates, 0):
            block.copy_(torch.eye(block.shape[0], block.shape[1], dtype=block.dtype))
    return weight
