"""Tiny models with known dynamics, written against the model contract, for the analysis tests."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from mnemonet.models.base import Cell
from mnemonet.models.recurrent import Recurrent


class HState(NamedTuple):
    h: Tensor


class LinearCell(Cell):
    """h ← A h + B x; output h."""

    def __init__(self, A: Tensor, B: Tensor | None = None) -> None:
        super().__init__()
        S = A.shape[0]
        B = torch.zeros(S, 1, dtype=A.dtype) if B is None else B
        self.A = nn.Parameter(A.clone())
        self.B = nn.Parameter(B.clone())
        self.input_size = B.shape[1]
        self.output_size = S

    def initial_state(self, batch_size, device=None, dtype=None):
        return HState(torch.zeros(batch_size, self.A.shape[0], device=device, dtype=dtype or self.A.dtype))

    def forward(self, x_t, state, t=0, mask=None):
        h = state.h @ self.A.T + x_t @ self.B.T
        return h, HState(h)


class TanhCell(Cell):
    """h ← tanh(W h + U x + b); output h."""

    def __init__(self, W: Tensor, U: Tensor | None = None, b: Tensor | None = None) -> None:
        super().__init__()
        S = W.shape[0]
        self.W = nn.Parameter(W.clone())
        self.U = nn.Parameter(torch.zeros(S, 1, dtype=W.dtype) if U is None else U.clone())
        self.b = nn.Parameter(torch.zeros(S, dtype=W.dtype) if b is None else b.clone())
        self.input_size = self.U.shape[1]
        self.output_size = S

    def initial_state(self, batch_size, device=None, dtype=None):
        return HState(torch.zeros(batch_size, self.W.shape[0], device=device, dtype=dtype or self.W.dtype))

    def forward(self, x_t, state, t=0, mask=None):
        h = torch.tanh(state.h @ self.W.T + x_t @ self.U.T + self.b)
        return h, HState(h)


class PairState(NamedTuple):
    a: Tensor
    b: Tensor


class PairCell(Cell):
    """A two-leaf state (a [B, 2], b [B, 1, 2]) to check flattening: a ← tanh(M a + x), b ← 0.5 b + a."""

    def __init__(self) -> None:
        super().__init__()
        self.M = nn.Parameter(torch.tensor([[0.5, -0.3], [0.2, 0.4]], dtype=torch.float64))
        self.input_size = 2
        self.output_size = 2

    def initial_state(self, batch_size, device=None, dtype=None):
        dtype = dtype or self.M.dtype
        return PairState(torch.zeros(batch_size, 2, dtype=dtype), torch.zeros(batch_size, 1, 2, dtype=dtype))

    def forward(self, x_t, state, t=0, mask=None):
        a = torch.tanh(state.a @ self.M.T + x_t)
        b = 0.5 * state.b + a[:, None]
        return a, PairState(a, b)


def linear_model(A: Tensor, B: Tensor | None = None) -> Recurrent:
    return Recurrent(LinearCell(A, B))


def tanh_model(W: Tensor, U: Tensor | None = None, b: Tensor | None = None) -> Recurrent:
    return Recurrent(TanhCell(W, U, b))
