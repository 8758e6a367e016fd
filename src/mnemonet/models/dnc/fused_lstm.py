"""A fused LSTM step for the DNC's default controller: torch's LSTM equations as one autograd node.

In a DNC the controller's input [x_t; r_{t−1}] depends on the previous step's memory reads, so torch's
fused sequence kernels cannot run it. :class:`DNCCell` therefore runs the step loop itself; with an
``LSTMCell`` controller it uses this module: W_ih x_t + b for all t in one matmul, then per step one node
(:class:`LSTMStep`) for W_hh h_{t−1} + W_ih^(r) r_{t−1}, the gate nonlinearities and the cell update, with a
hand-written backward. The equations are torch's (gate order i, f, g, o):

    c_t = σ(a_f) ⊙ c_{t−1} + σ(a_i) ⊙ tanh(a_g),    h_t = σ(a_o) ⊙ tanh(c_t).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from mnemonet.models.cells import LSTMCell

_SIGMOID_BACKWARD = torch.ops.aten.sigmoid_backward.grad_input
_TANH_BACKWARD = torch.ops.aten.tanh_backward
_TANH_BACKWARD_INTO = torch.ops.aten.tanh_backward.grad_input


def lstm_cell_forward(gates: Tensor, c: Tensor, h_out: Tensor | None = None) -> tuple[Tensor, Tensor, tuple]:
    """torch's LSTM cell update from the summed pre-activations, without autograd.

    Args:
        gates: a_t `[B, 4H]` in torch's gate order (i, f, g, o).
        c: c_{t−1} `[B, H]`.
        h_out: optional `[B, H]` (any strides) to write h_t into.

    Returns:
        (h_t `[B, H]`, c_t `[B, H]`, (σ(a_t) `[B, 4H]` (its g block unused), tanh(a_g), tanh(c_t)) for
        :func:`lstm_cell_backward`).
    """
    H = c.shape[1]
    sig = torch.sigmoid(gates)  # one kernel for all four blocks; the g block is replaced by tanh(a_g)
    g = torch.tanh(gates[:, 2 * H : 3 * H])
    i, f, _, o = sig.chunk(4, 1)
    c_new = torch.addcmul(f * c, i, g)  # c_t = f ⊙ c_{t−1} + i ⊙ g
    tc = torch.tanh(c_new)
    h_new = torch.mul(o, tc) if h_out is None else torch.mul(o, tc, out=h_out)  # h_t = o ⊙ tanh(c_t)
    return h_new, c_new, (sig, g, tc)


def lstm_cell_backward(
    saved: tuple, c: Tensor, g_h: Tensor | None, g_c: Tensor | None, out: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """VJP of :func:`lstm_cell_forward`: (∂L/∂a_t `[B, 4H]`, ∂L/∂c_{t−1} `[B, H]`) from ∂L/∂h_t and ∂L/∂c_t.

    Args:
        saved: the third result of :func:`lstm_cell_forward`.
        c: c_{t−1} `[B, H]`.
        g_h, g_c: gradients of h_t and c_t (None for zero).
        out: optional `[B, 4H]` to write ∂L/∂a_t into.
    """
    sig, g, tc = saved
    H = c.shape[1]
    i, f, _, o = sig.chunk(4, 1)
    if g_h is None:
        g_h = torch.zeros_like(tc)
    g_ct = _TANH_BACKWARD(g_h * o, tc)  # through h = o tanh(c_t)
    if g_c is not None:
        g_ct = g_ct.add_(g_c)
    if out is None:
        out = torch.empty_like(sig)
    torch.mul(g_ct, g, out=out[:, :H])  # d/di
    torch.mul(g_ct, c, out=out[:, H : 2 * H])  # d/df
    torch.mul(g_h, tc, out=out[:, 3 * H :])  # d/do
    _SIGMOID_BACKWARD(out, sig, grad_input=out)  # σ' = σ (1 − σ); the g block is overwritten next
    _TANH_BACKWARD_INTO(g_ct * i, g, grad_input=out[:, 2 * H : 3 * H])  # d/dg, tanh' = 1 − tanh²
    return out, g_ct * f


class LSTMStep(torch.autograd.Function):
    """``(pre [B, 4H], r_{t−1} [B, R, W], h_{t−1}, c_{t−1} [B, H], W_hr) -> (h_t, c_t)``, one autograd node.

    gates = pre + [h_{t−1}; r_{t−1}] W_hr^T with pre = W_ih^(x) x_t + b; then torch's LSTM cell update.
    ∂L/∂W_hr is not formed here: the step's (input, gate gradient) pair goes to ``record`` and
    :class:`~mnemonet.models.dnc.deferred.TimeShared` sums all steps in one matmul.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, pre: Tensor, r: Tensor, h: Tensor, c: Tensor, weight: Tensor, record: Any
    ) -> tuple[Tensor, Tensor]:
        hr = torch.cat([h, r.reshape(r.shape[0], -1)], 1)  # [h_{t−1}; r_{t−1}], (B, H + R·W)
        h_new, c_new, (sig, g, tc) = lstm_cell_forward(torch.addmm(pre, hr, weight.t()), c)
        ctx.save_for_backward(sig, g, tc, c, hr, weight)
        ctx.record = record
        ctx.r_shape = r.shape
        ctx.set_materialize_grads(False)
        return h_new, c_new

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_h: Tensor | None, g_c: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        sig, g, tc, c, hr, weight = ctx.saved_tensors
        g_gates, g_c_prev = lstm_cell_backward((sig, g, tc), c, g_h, g_c)
        g_hr = torch.mm(g_gates, weight)  # (B, H + R·W)
        ctx.record.inputs.append(hr)
        ctx.record.grads.append(g_gates)
        H = c.shape[1]
        return g_gates, g_hr[:, H:].reshape(ctx.r_shape), g_hr[:, :H], g_c_prev, None, None


def lstm_weights(cell: LSTMCell, input_size: int) -> tuple[Tensor, Tensor | None, Tensor]:
    """Split an LSTMCell's parameters for a controller whose input is [x_t (input_size); r_{t−1}].

    Returns:
        (W_x `[4H, input_size]`, total bias `[4H]` or None, W_hr `[4H, H + R·W]` = [W_hh, W_ih^(r)], the
        weight of [h_{t−1}; r_{t−1}]).
    """
    w_ih = cell.weight_ih
    if not cell.has_bias:
        bias = None
    elif cell.single_bias:
        bias = cell.bias
    else:
        bias = cell.bias_ih + cell.bias_hh
    return w_ih[:, :input_size], bias, torch.cat([cell.weight_hh, w_ih[:, input_size:]], 1)
