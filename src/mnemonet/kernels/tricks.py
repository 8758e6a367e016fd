"""Small tricks the kernels share: cached scalar tensors, per-step views, and aten's backward ops.

- :func:`const`: a cached 0-d tensor, so tensor-tensor ops skip wrapping a Python scalar on every call.
- :func:`per_step`: one NamedTuple of views per time step, made with one ``unbind`` per buffer.
- ``SIGMOID_BACKWARD``, ``TANH_BACKWARD``, ``TANH_BACKWARD_INTO``: aten's pointwise VJPs
  (σ' = σ(1 − σ), tanh' = 1 − tanh²) from the saved outputs, with ``grad_input=`` for writing in place.
- :func:`tanh_into`: tanh(x) = 2σ(2x) − 1, which torch's CPU kernels compute 2-4× faster than tanh.
- :class:`StepThreads`: a recurrent loop's matmuls on all intra-op threads, its small per-step ops on one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

SIGMOID_BACKWARD = torch.ops.aten.sigmoid_backward.grad_input
TANH_BACKWARD = torch.ops.aten.tanh_backward
TANH_BACKWARD_INTO = torch.ops.aten.tanh_backward.grad_input

_CONSTANTS: dict[tuple[float, torch.dtype, torch.device], Tensor] = {}


def const(value: float, like: Tensor) -> Tensor:
    """A cached 0-d tensor of ``like``'s dtype and device holding ``value``."""
    key = (value, like.dtype, like.device)
    out = _CONSTANTS.get(key)
    if out is None:
        out = _CONSTANTS[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
    return out


def per_step(cls: Any, parts: tuple[Tensor | None, ...], steps: bool) -> list[Any]:
    """``cls(*parts)`` in a list, or one ``cls`` per index of the parts' first axis (one ``unbind`` per part)."""
    if not steps:
        return [cls(*parts)]
    return [cls(*views) for views in zip(*(x.unbind(0) for x in parts), strict=True)]  # type: ignore[union-attr]


def tanh_into(x: Tensor, out: Tensor) -> Tensor:
    """tanh(x) into ``out``; on CPU as 2σ(2x) − 1 (the same function, computed faster there)."""
    if x.device.type != "cpu":
        return torch.tanh(x, out=out)
    return torch.sigmoid(x * 2, out=out).mul_(2).sub_(1)


#: Let :class:`StepThreads` run the small per-step ops of a recurrent loop on one thread (see there).
SERIAL_STEPS = True


class StepThreads:
    """Intra-op threads inside a recurrent loop on CPU: all of them for the matmuls, one for the rest of a step.

    torch splits an op over its intra-op threads by size alone; a step's batch normalisations on a `[B, F]`
    block (split over the F channels) and its pointwise ops then cost more in thread hand-offs than the
    split saves (measured in ``benchmarks/bench_bn_lstm.py``). A loop calls :meth:`all` before each matmul
    and :meth:`one` after it, and :meth:`all` once more when it ends (also on error). It does nothing with
    one thread, off CPU, or with ``SERIAL_STEPS`` off.

    Args:
        cpu: whether the loop runs on CPU.
    """

    def __init__(self, cpu: bool) -> None:
        self.threads = torch.get_num_threads()
        self.on = SERIAL_STEPS and cpu and self.threads > 1

    def all(self) -> None:
        """Use every intra-op thread again (as before the loop)."""
        if self.on:
            torch.set_num_threads(self.threads)

    def one(self) -> None:
        """Use one intra-op thread."""
        if self.on:
            torch.set_num_threads(1)
