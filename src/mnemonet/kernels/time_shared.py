"""Linear maps applied at every time step whose weight gradient is computed once per sequence.

Inside a recurrent loop, autograd computes ∂L/∂W = Σ_t g_t^T x_t as T rank-B updates of a full weight
matrix, each written and then accumulated: for a DNC's controller and interface (B = 16, weights of
~10^5 entries) this memory traffic costs more than the matmuls that use the weights. :class:`TimeShared`
instead records (x_t, g_t) during the backward pass and forms the sum as one matmul over all steps when
the backward pass reaches the weight. Values and gradients are the same; only the order of summation
differs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


class _Record:
    """The (input, output gradient) pairs of one sequence's steps, filled in during backward."""

    def __init__(self) -> None:
        self.inputs: list[Tensor] = []
        self.grads: list[Tensor] = []


class _Collect(torch.autograd.Function):
    """Identity on W in forward; in backward, ∂L/∂W = (Σ_t g_t^T x_t) from the record, plus any direct gradient."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, record: _Record) -> Tensor:  # type: ignore[override]
        ctx.record = record
        ctx.set_materialize_grads(False)
        return weight.view_as(weight)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor | None) -> tuple[Tensor | None, None]:  # type: ignore[override]
        record = ctx.record
        if not record.grads:
            return grad, None
        g = torch.cat(record.grads, 0)  # (Σ B, out)
        x = torch.cat(record.inputs, 0)  # (Σ B, in)
        record.grads.clear()
        record.inputs.clear()
        out = torch.mm(g.t(), x)  # (out, in)
        return (out if grad is None else out.add_(grad)), None


class _Step(torch.autograd.Function):
    """y = b + x W^T for one step; ∂L/∂W goes to the record instead of being formed here."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor, record: _Record) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.record = record
        return torch.addmm(bias, x, weight.t())

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None, Tensor, None]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        ctx.record.inputs.append(x)
        ctx.record.grads.append(g)
        return torch.mm(g, weight), None, g, None


class TimeShared:
    """A weight shared by all steps of one sequence: ``TimeShared(W)(x_t, b)`` = b + x_t W^T.

    Create one per sequence (per forward pass); ``b`` may be a bias `[out]` or a per-step term `[B, out]`.

    Args:
        weight: W `[out, in]` (a parameter or any tensor that requires grad).
    """

    def __init__(self, weight: Tensor) -> None:
        self.record = _Record()
        self.weight = _Collect.apply(weight, self.record) if weight.requires_grad else weight

    def __call__(self, x: Tensor, bias: Tensor) -> Tensor:
        """`[B, in]` -> `[B, out]`."""
        if not torch.is_grad_enabled() or not self.weight.requires_grad:
            return torch.addmm(bias, x, self.weight.t())
        return _Step.apply(x, self.weight, bias, self.record)
