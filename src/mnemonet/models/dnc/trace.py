"""Traces of a DNC run: what the memory did at every step, stacked over time for the memory maps.

``run_with_trace(model, x)`` runs a DNC (a ``Recurrent`` around a :class:`DNCCell`, as ``build("dnc")``
returns) and also returns a :class:`Trace` whose fields are the per-step :class:`AccessInfo` stacked on
axis 1: `[B, T, ...]`. Steps past a sequence's length are zero in the trace, as they are in the output.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from mnemonet.models.dnc.access import AccessInfo
from mnemonet.models.dnc.cell import DNCCell
from mnemonet.models.recurrent import Recurrent, padding_mask


class Trace(NamedTuple):
    """Per-step memory activity, batch first and time second.

    Attributes:
        write_weights: w^w, `[B, T, Hw, N]`.
        read_weights: w^r, `[B, T, R, N]`.
        usage: u, `[B, T, N]`.
        allocation: a, `[B, T, Hw, N]`.
        allocation_gates: g^a, `[B, T, Hw]`.
        write_gates: g^w, `[B, T, Hw]`.
        free_gates: f, `[B, T, R]`.
        read_modes: π, `[B, T, R, 1 + 2 Hw]` (backward…, content, forward…).
    """

    write_weights: Tensor
    read_weights: Tensor
    usage: Tensor
    allocation: Tensor
    allocation_gates: Tensor
    write_gates: Tensor
    free_gates: Tensor
    read_modes: Tensor


def stack_trace(steps: list[AccessInfo], lengths: Tensor | None = None) -> Trace:
    """Stack per-step infos into a :class:`Trace` `[B, T, ...]`, zeroing steps at or past each length."""
    if not steps:
        raise ValueError("steps: expected at least one traced step, got an empty list")
    fields = []
    for i in range(len(AccessInfo._fields)):
        field = torch.stack([step[i].detach() for step in steps], dim=1)  # (B, T, ...)
        keep = padding_mask(lengths, field.shape[1])  # (B, T)
        if keep is not None:
            field = field * keep.reshape(*keep.shape, *([1] * (field.dim() - 2))).to(field)
        fields.append(field)
    return Trace(*fields)


def run_with_trace(
    model: Recurrent, x: Tensor, state: Any = None, lengths: Tensor | None = None
) -> tuple[Tensor, Any, Trace]:
    """Run a DNC and record its memory activity.

    Args:
        model: a ``Recurrent`` whose cell is a :class:`DNCCell` (what ``build("dnc", ...)`` returns).
        x: `[B, T, input_size]` (or `[T, B, input_size]` if the model is not batch first).
        state: initial state or None.
        lengths: optional `[B]` lengths.

    Returns:
        (y, final state, :class:`Trace`) — the trace is batch first whatever the model's layout.
    """
    cell = getattr(model, "cell", None)
    if not isinstance(cell, DNCCell):
        raise ValueError(f"model: expected a Recurrent around a DNCCell, got {type(model).__name__}")
    if model.reverse:
        raise ValueError("model: tracing a reversed DNC is not supported")
    cell.tracing = []
    try:
        y, state = model(x, state, lengths=lengths)
        steps = cell.tracing
    finally:
        cell.tracing = None
    lens = None if lengths is None else torch.as_tensor(lengths).to("cpu", torch.int64)
    return y, state, stack_trace(steps, lens)
