"""A fused LSTM step for the DNC's default controller: torch's LSTM equations as one autograd node.

In a DNC the controller's input [x_t; r_{t−1}] depends on the previous step's memory reads, so torch's
fused sequence kernels cannot run it. :class:`DNCCell` therefore runs the step loop itself; with an
``LSTMCell`` controller it uses this module: W_ih x_t + b for all t in one matmul, then per step one node
(:class:`LSTMStep`) for W_hh h_{t−1} + W_ih^(r) r_{t−1}, the gate nonlinearities and the cell update, with a
hand-written backward. The equations are torch's (gate order i, f, g, o):

    c_t = σ(a_f) ⊙ c_{t−1} + σ(a_i) ⊙ tanh(a_g),    h_t = σ(a_o) ⊙ tanh(c_t).

tanh(a_g) is computed as 2 σ(2 a_g) − 1 (the same function) inside the one sigmoid kernel of all four gates:
torch's CPU tanh costs several sigmoids. ``sequence.DNCSequence`` uses the same cell functions for whole
sequences, with per-step buffers (:class:`GateViews`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from mnemonet.kernels.tricks import SIGMOID_BACKWARD as _SIGMOID_BACKWARD
from mnemonet.kernels.tricks import TANH_BACKWARD as _TANH_BACKWARD
from mnemonet.kernels.tricks import TANH_BACKWARD_INTO as _TANH_BACKWARD_INTO
from mnemonet.kernels.tricks import const as _const
from mnemonet.kernels.tricks import per_step as _per_step


class GateViews(NamedTuple):
    """One step's LSTM buffers and their views, made once per sequence (see ``fused.StepViews``)."""

    gates: Tensor  # a_t, the summed pre-activations, (B, 4H) in torch's gate order (i, f, g, o)
    gates_g: Tensor  # its g block, (B, H)
    sig: Tensor  # σ(a_t) but σ(2 a_g) in the g block, (B, 4H)
    i: Tensor  # σ(a_i), (B, H), view of sig
    f: Tensor
    sig_g: Tensor  # σ(2 a_g)
    o: Tensor
    g: Tensor  # tanh(a_g), (B, H)
    c: Tensor  # c_t, (B, H)
    tc: Tensor  # tanh(c_t), (B, H)


class GateGradViews(NamedTuple):
    """One step's ∂L/∂a_t `[B, 4H]` and its four gate blocks `[B, H]`."""

    whole: Tensor
    i: Tensor
    f: Tensor
    g: Tensor
    o: Tensor


def gate_views(gates: Tensor) -> list[GateViews]:
    """Views of a pre-activation buffer `[T, B, 4H]` (or `[B, 4H]` for one step) and of a new σ buffer."""
    sig = torch.empty_like(gates)
    results = [gates.new_empty(*gates.shape[:-1], gates.shape[-1] // 4) for _ in range(3)]
    parts = (gates, gates.chunk(4, -1)[2], sig, *sig.chunk(4, -1), *results)
    return _per_step(GateViews, parts, gates.dim() == 3)


def gate_grad_views(grads: Tensor) -> list[GateGradViews]:
    """Views of a gradient buffer `[T, B, 4H]` (or `[B, 4H]` for one step) by gate."""
    return _per_step(GateGradViews, (grads, *grads.chunk(4, -1)), grads.dim() == 3)


def lstm_cell_forward(v: GateViews, c: Tensor, h_out: Tensor | None = None) -> tuple[Tensor, Tensor, tuple]:
    """torch's LSTM cell update from the summed pre-activations in ``v.gates``, without autograd.

    Args:
        v: this step's :class:`GateViews`, a_t `[B, 4H]` already written; σ(a_t) is written into ``v.sig``.
        c: c_{t−1} `[B, H]`.
        h_out: optional `[B, H]` (any strides) to write h_t into.

    Returns:
        (h_t `[B, H]`, c_t `[B, H]`, (σ(a_t), σ(a_i), σ(a_f), σ(a_o), tanh(a_g), tanh(c_t)) for
        :func:`lstm_cell_backward`).
    """
    # tanh(a) = 2 σ(2a) − 1: one sigmoid kernel for all four blocks (torch's tanh costs several sigmoids here)
    two = _const(2.0, c)
    v.gates_g.mul_(two)
    torch.sigmoid(v.gates, out=v.sig)
    g = torch.addcmul(_const(-1.0, c), v.sig_g, two, out=v.g)
    c_new = torch.addcmul(v.f * c, v.i, g, out=v.c)  # c_t = f ⊙ c_{t−1} + i ⊙ g
    tc = torch.tanh(c_new, out=v.tc)
    h_new = torch.mul(v.o, tc) if h_out is None else torch.mul(v.o, tc, out=h_out)  # h_t = o ⊙ tanh(c_t)
    return h_new, c_new, (v.sig, v.i, v.f, v.o, g, tc)


def lstm_cell_backward(
    saved: tuple, c: Tensor, g_h: Tensor | None, g_c: Tensor | None, out: GateGradViews
) -> tuple[Tensor, Tensor]:
    """VJP of :func:`lstm_cell_forward`: (∂L/∂a_t `[B, 4H]`, ∂L/∂c_{t−1} `[B, H]`) from ∂L/∂h_t and ∂L/∂c_t.

    Args:
        saved: the third result of :func:`lstm_cell_forward`.
        c: c_{t−1} `[B, H]`.
        g_h, g_c: gradients of h_t and c_t (None for zero).
        out: where to write ∂L/∂a_t (returned as ``out.whole``).
    """
    sig, i, f, o, g, tc = saved
    if g_h is None:
        g_h = torch.zeros_like(tc)
    g_ct = _TANH_BACKWARD(g_h * o, tc)  # through h = o tanh(c_t)
    if g_c is not None:
        g_ct = g_ct.add_(g_c)
    torch.mul(g_ct, g, out=out.i)  # d/di
    torch.mul(g_ct, c, out=out.f)  # d/df
    torch.mul(g_h, tc, out=out.o)  # d/do
    _SIGMOID_BACKWARD(out.whole, sig, grad_input=out.whole)  # σ' = σ (1 − σ); the g block is overwritten next
    _TANH_BACKWARD_INTO(g_ct * i, g, grad_input=out.g)  # d/dg, tanh' = 1 − tanh²
    return out.whole, g_ct * f


class LSTMStep(torch.autograd.Function):
    """``(pre [B, 4H], r_{t−1} [B, R, W], h_{t−1}, c_{t−1} [B, H], W_hr) -> (h_t, c_t)``, one autograd node.

    gates = pre + [h_{t−1}; r_{t−1}] W_hr^T with pre = W_ih^(x) x_t + b; then torch's LSTM cell update.
    ∂L/∂W_hr is not formed here: the step's (input, gate gradient) pair goes to ``record`` and
    :class:`~mnemonet.kernels.time_shared.TimeShared` sums all steps in one matmul.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, pre: Tensor, r: Tensor, h: Tensor, c: Tensor, weight: Tensor, record: Any
    ) -> tuple[Tensor, Tensor]:
        hr = torch.cat([h, r.reshape(r.shape[0], -1)], 1)  # [h_{t−1}; r_{t−1}], (B, H + R·W)
        v = gate_views(torch.addmm(pre, hr, weight.t()))[0]
        h_new, c_new, (*_, g, tc) = lstm_cell_forward(v, c)
        ctx.save_for_backward(v.sig, g, tc, c, hr, weight)
        ctx.record = record
        ctx.r_shape = r.shape
        ctx.set_materialize_grads(False)
        return h_new, c_new

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_h: Tensor | None, g_c: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        sig, g, tc, c, hr, weight = ctx.saved_tensors
        i, f, _, o = sig.chunk(4, 1)
        out = gate_grad_views(torch.empty_like(sig))[0]
        g_gates, g_c_prev = lstm_cell_backward((sig, i, f, o, g, tc), c, g_h, g_c, out)
        g_hr = torch.mm(g_gates, weight)  # (B, H + R·W)
        ctx.record.inputs.append(hr)
        ctx.record.grads.append(g_gates)
        H = c.shape[1]
        return g_gates, g_hr[:, H:].reshape(ctx.r_shape), g_hr[:, :H], g_c_prev, None, None
