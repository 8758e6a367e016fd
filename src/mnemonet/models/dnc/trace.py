"""Traces of a DNC run: what the memory did at every step, stacked over time for the memory maps.

``model.trace(x)`` (``RecurrentModel.trace``) on a DNC returns the per-step :class:`AccessInfo` fields
stacked on axis 1, `[B, T, ...]`, by name; ``Trace(**traces)`` holds them as one record. Steps past a
sequence's length are zero, as they are in the output.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


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
