"""The BN-LSTM recurrence over a whole sequence, with hand-written backpropagation through time.

:func:`bn_lstm_loop` runs the recurrent part of the BN-LSTM (Cooijmans et al., 2017, eqs. 6-8) for all
steps, given the input term of every step already computed (one matmul and one batched BN). Its
forward records no autograd graph and its backward walks the steps in reverse by hand: per step one
matmul for the gradient of h_{t-1}, fused batch-norm backward kernels and a few pointwise ops; the
gradient of W_h over all steps is one matmul at the end, as in fused LSTM kernels. On CPU in float32
the matmuls run oneDNN's kernels (as torch's own CPU LSTM does) and tanh is computed as 2σ(2x) − 1.
It computes what the step path of :class:`~mnemonet.models.bn_lstm.BNLSTMCell` computes (the tests
compare the two, values and gradients, and gradcheck it); it supports first-order gradients only.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from mnemonet.kernels.onednn import PackedLinear
from mnemonet.kernels.tricks import SIGMOID_BACKWARD, TANH_BACKWARD, TANH_BACKWARD_INTO, tanh_into

_bn_forward = torch.ops.aten.native_batch_norm
_bn_backward = torch.ops.aten.native_batch_norm_backward


class LoopStats(NamedTuple):
    """Batch statistics of a training pass, for the running estimates: means and biased variances.

    Attributes:
        mean_1, var_1: `[T, 4H]` of the normalisation inside the gates (BN of W_h·h, or of the sum).
        mean_c, var_c: `[T, H]` of the normalisation of c.
        count: `[T]` number of non-padded rows at each step.
    """

    mean_1: Tensor
    var_1: Tensor
    mean_c: Tensor
    var_c: Tensor
    count: Tensor


def bn_lstm_loop(
    ix: Tensor,
    h0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    gamma_1: Tensor | None,
    shift_1: Tensor | None,
    gamma_c: Tensor | None,
    beta_c: Tensor | None,
    mask: Tensor | None,
    variant: str,
    training: tuple[bool, bool],
    eps: float,
    running_1: tuple[Tensor, Tensor] | None = None,
    running_c: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor, LoopStats | None]:
    """Run the BN-LSTM recurrence for T steps.

    With ``variant`` ``"full"``: pre_t = ix_t + BN(W_h h_{t-1}; γ_1, 0), and h_t = σ(o)⊙tanh(BN(c_t; γ_c,
    β_c)); ``"summed"``: pre_t = BN(ix_t + W_h h_{t-1}; γ_1, shift_1); ``"input_only"``: pre_t = ix_t +
    W_h h_{t-1}. Then c_t = σ(f)⊙c_{t-1} + σ(i)⊙tanh(g) (eq. 7) and, without BN of c, h_t = σ(o)⊙tanh(c_t).

    Args:
        ix: `[B, T, 4H]` input term of every step (normalised W_x·x + b, or raw W_x·x for ``"summed"``).
        h0, c0: `[B, H]` initial state.
        weight_hh: W_h `[4H, H]`.
        gamma_1, shift_1: γ and shift `[4H]` of the gate normalisation (None where absent).
        gamma_c, beta_c: γ_c, β_c `[H]` of the normalisation of c (``"full"`` only).
        mask: `[B, T]` bool, true at real steps; padded rows keep their state, output 0, and are left
            out of the batch statistics. None: no padding.
        variant: ``"full"``, ``"summed"`` or ``"input_only"``.
        training: for the gate normalisation and for that of c: batch statistics per step (else the
            given running statistics).
        eps: ε of the normalisations.
        running_1, running_c: evaluation only: (mean, var) of every step, `[T, 4H]` and `[T, H]`.

    Returns:
        y `[B, T, H]`, h_T, c_T `[B, H]` (at each row's last real step), and the batch statistics of
        every step (empty for a normalisation in evaluation mode or absent).
    """
    out = _Loop.apply(
        ix, h0, c0, weight_hh, gamma_1, shift_1, gamma_c, beta_c, mask, variant, training, eps, running_1, running_c
    )
    y, h, c, mean_1, var_1, mean_c, var_c, count = out
    return y, h, c, LoopStats(mean_1, var_1, mean_c, var_c, count)


def _masked_stats(u: Tensor, keep: Tensor, count: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Mean and 1/sqrt(var + ε) of ``u`` `[B, F]` over rows where ``keep`` `[B, 1]` is true (eq. 5's statistics).

    With no row counted, mean 0 and variance 1 (the output of such a step is padding anyway).
    """
    n = count.clamp(min=1.0)
    mean = torch.where(keep, u, 0.0).sum(0) / n
    var = torch.where(keep, u - mean, 0.0).square().sum(0) / n
    var = torch.where(count > 0, var, 1.0)
    return mean, torch.rsqrt(var + eps)


class _StepNorm:
    """One batch normalisation inside the loop, ``factor`` · BN(u; γ, shift) per step, forward and backward by hand.

    In training it normalises with the batch statistics of each step (only rows where ``keep`` is
    true count) and records them; in evaluation it uses the given per-step statistics. ``factor``
    scales the forward output only (the loop asks for 2·BN(c), the argument of 2σ(2x) − 1 = tanh x);
    :meth:`backward` takes and returns gradients of the unscaled BN(u; γ, shift).
    """

    def __init__(self, training: bool, running: tuple[Tensor, Tensor] | None, gamma: Tensor, shift,
                 eps: float, factor: float = 1.0) -> None:  # fmt: skip
        self.training = training
        self.eps = eps
        self.means: list[Tensor] = []  # per step, training
        self.rstds: list[Tensor] = []
        # γ and shift of the forward output (× factor: exact for factor 2, so the output is exactly 2·BN)
        self.gamma = gamma if factor == 1.0 else gamma * factor
        self.shift = shift if factor == 1.0 or shift is None else shift * factor
        if not training:
            mean, var = running  # (T, F) each
            self.mean = mean
            self.rstd = torch.rsqrt(var + eps)
            self.scale = self.rstd * gamma  # (T, F): dBN/du
            scale = self.rstd * self.gamma  # (T, F)
            offset = -mean * scale if self.shift is None else self.shift - mean * scale  # (T, F)
            self.scales, self.offsets = scale.unbind(0), offset.unbind(0)  # T × (F,)

    def forward(self, u: Tensor, t: int, keep, count: Tensor) -> Tensor:
        """factor · BN of step t's `[B, F]` input (eq. 5)."""
        if not self.training:
            return torch.addcmul(self.offsets[t], u, self.scales[t])
        if keep is None:
            y, mean, rstd = _bn_forward(u, self.gamma, self.shift, None, None, True, 0.0, self.eps)
        else:
            mean, rstd = _masked_stats(u, keep, count, self.eps)
            y = (u - mean) * (rstd * self.gamma)
            y = y if self.shift is None else y + self.shift
        self.means.append(mean)
        self.rstds.append(rstd)
        return y

    def finish(self) -> None:
        """After the forward loop: per-step statistics as `[T, F]` tensors."""
        if self.training:
            self.mean = torch.stack(self.means)  # (T, F)
            self.rstd = torch.stack(self.rstds)  # (T, F)
            self.means = self.rstds = []

    def batch_stats(self) -> tuple[Tensor, Tensor]:
        """(mean, biased variance) `[T, F]` of a training pass."""
        return self.mean.clone(), self.rstd.pow(-2) - self.eps

    def backward(self, dy: Tensor, u: Tensor, gamma: Tensor, t: int, keep, count: Tensor, grads: _Grads) -> Tensor:
        """dL/du for step t given dL/dy `[B, F]` (y = BN(u; γ, shift)); appends that step's dL/dγ, dL/dshift
        to ``grads``."""
        mean, rstd = self.mean[t], self.rstd[t]
        if self.training and keep is None:
            du, dgamma, dshift = _bn_backward(dy, u, gamma, None, None, mean, rstd, True, self.eps, [True] * 3)
        else:
            xhat = (u - mean) * rstd
            dgamma = (dy * xhat).sum(0)
            dshift = dy.sum(0)
            if self.training:
                # dL/du_i = rstd (dx̂_i − m_i/n (Σ_j dx̂_j + x̂_i Σ_j dx̂_j x̂_j)), dx̂ = γ dy, m_i: row i counted
                centred = (dshift * gamma + xhat * (dgamma * gamma)) / count.clamp(min=1.0)
                du = (dy * gamma - torch.where(keep, centred, 0.0)) * rstd
            else:
                du = dy * self.scale[t]
        grads.gamma.append(dgamma)
        grads.shift.append(dshift)
        return du


class _Grads(NamedTuple):
    """Per-step dL/dγ and dL/dshift `[F]` of one normalisation, collected by the backward loop."""

    gamma: list[Tensor]
    shift: list[Tensor]

    def total(self) -> tuple[Tensor, Tensor]:
        """dL/dγ and dL/dshift summed over the steps."""
        return torch.stack(self.gamma).sum(0), torch.stack(self.shift).sum(0)


def _gate_activations(pre: Tensor, out: Tensor, out_g: Tensor, H: int) -> None:
    """σ(ĩ), σ(f̃), tanh(g̃), σ(õ) of ``pre`` `[B, 4H]` into ``out`` (``out_g``: its g block; ``pre`` is overwritten)."""
    pre_g = pre[:, 2 * H : 3 * H]
    if pre.device.type != "cpu":
        torch.sigmoid(pre, out=out)
        torch.tanh(pre_g, out=out_g)
        return
    pre_g.mul_(2)
    torch.sigmoid(pre, out=out)
    out_g.mul_(2).sub_(1)  # tanh(g̃) = 2σ(2g̃) − 1


def _step_views(x: Tensor) -> tuple[Tensor, ...]:
    """The T steps of ``x`` `[T, ...]` as views, made in one call (cheaper than indexing every step)."""
    return x.unbind(0)


def _gate_views(act: Tensor, H: int) -> list[tuple[Tensor, ...]]:
    """σ(i), σ(f), tanh(g), σ(o) of every step as views of ``act`` `[T, B, 4H]`: 4 lists of T `[B, H]`."""
    T, B, _ = act.shape
    blocks = act.view(T, B, 4, H)  # (T, B, 4, H)
    return [blocks[:, :, k].unbind(0) for k in range(4)]


class _Loop(torch.autograd.Function):
    @staticmethod
    def forward(ctx, ix, h0, c0, w, g1, s1, gc, bc, mask, variant, training, eps, running_1, running_c):
        B, T, G = ix.shape
        H = G // 4
        full, summed = variant == "full", variant == "summed"
        cpu = ix.device.type == "cpu"
        new = ix.new_empty
        linear = PackedLinear(w, B)  # h ↦ W_h h
        norm_1 = _StepNorm(training[0], running_1, g1, s1, eps) if (full or summed) else None
        # on CPU the normalisation of c returns 2·BN(c), so that tanh(BN(c)) = 2σ(2·BN(c)) − 1 takes no extra op
        norm_c = _StepNorm(training[1], running_c, gc, bc, eps, 2.0 if cpu else 1.0) if full else None
        act = new(T, B, G)  # σ(i), σ(f), tanh(g), σ(o)
        cn = new(T, B, H)  # c_t of every row (input of BN of c), before padded rows are restored
        tc = new(T, B, H)  # tanh(BN(c_t)) or tanh(c_t)
        hy = new(T + 1, B, H)  # h_0, then the outputs y_t: without padding, hy[t] is h_{t-1} of step t
        hy[0] = h0
        ys = hy[1:]  # (T, B, H)
        # per-step views, made once
        ixs, acts, cns, tcs, yss = (_step_views(v) for v in (ix.transpose(0, 1), act, cn, tc, ys))
        gi, gf, gg, go = _gate_views(act, H)
        us = [] if norm_1 is not None else None  # input of the gate normalisation, per step
        hs = cs = keeps = None
        if mask is not None:  # carried states differ from the new ones on padded rows: keep them
            hs, cs = new(T + 1, B, H), new(T + 1, B, H)
            hs[0], cs[0] = h0, c0
            count = mask.sum(0).to(ix.dtype)  # (T,)
            keeps = _step_views(mask.t().unsqueeze(-1))  # T × (B, 1)
            hss, css = _step_views(hs), _step_views(cs)
        else:
            count = torch.full((T,), B, dtype=ix.dtype, device=ix.device)
        h, c = h0, c0
        for t in range(T):
            keep = None if mask is None else keeps[t]  # (B, 1)
            n_t = None if mask is None else count[t]  # rows counted at step t
            if summed:  # BN(W_x x + W_h h; γ, 0) + b
                u = linear(h, add=ixs[t])
                us.append(u)
                pre = norm_1.forward(u, t, keep, n_t)
            elif full:  # BN(W_h h; γ_h, 0) + [BN(W_x x; γ_x, 0) + b]   (eq. 6)
                u = linear(h)
                us.append(u)
                pre = norm_1.forward(u, t, keep, n_t).add_(ixs[t])
            else:  # W_h h + [BN(W_x x; γ_x, 0) + b]
                pre = linear(h, add=ixs[t])
            _gate_activations(pre, acts[t], gg[t], H)
            c_new = torch.mul(gf[t], c, out=cns[t]).addcmul_(gi[t], gg[t])  # eq. 7
            if not full:
                tanh_into(c_new, out=tcs[t])
            elif cpu:  # 2σ(2·BN(c)) − 1
                torch.sigmoid(norm_c.forward(c_new, t, keep, n_t), out=tcs[t]).mul_(2).sub_(1)
            else:
                torch.tanh(norm_c.forward(c_new, t, keep, n_t), out=tcs[t])
            h_new = torch.mul(go[t], tcs[t], out=yss[t])  # eq. 8
            if keep is None:
                h, c = h_new, c_new
            else:
                h = torch.where(keep, h_new, h, out=hss[t + 1])
                c = torch.where(keep, c_new, c, out=css[t + 1])
                yss[t].mul_(keep)
        stats = []
        for norm in (norm_1, norm_c):
            if norm is not None:
                norm.finish()
            stats += norm.batch_stats() if norm is not None and norm.training else [new(0), new(0)]
        stats.append(count.clone())
        ctx.save_for_backward(c0, w, g1, gc, mask)
        ctx.shape = (B, T, G)
        ctx.norms = (norm_1, norm_c)
        ctx.buffers = (hs, cs, act, cn, tc, us, hy, count)
        ctx.variant = variant
        ctx.mark_non_differentiable(*stats)
        return ys.transpose(0, 1), h.clone(), c.clone(), *stats

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dh, dc, *_):
        c0, w, g1, gc, mask = ctx.saved_tensors
        hs, cs, act, cn, tc, us, hy, count = ctx.buffers
        norm_1, norm_c = ctx.norms
        summed = ctx.variant == "summed"
        B, T, G = ctx.shape
        H = G // 4
        if hs is None:  # no padding: h_{t-1} = y_{t-1} and c_{t-1} = c_new of step t-1
            hs = hy  # (T + 1, B, H)
            c_prevs = (c0, *_step_views(cn)[: T - 1])
        else:
            c_prevs = _step_views(cs)
        dpre_all = dy.new_empty(T, B, G)  # dL/d pre_t
        dgrad = dy.new_empty(B, G)  # dL/d(σ(i), σ(f), tanh(g), σ(o)) of one step
        dg_i, dg_f, dg_g, dg_o = dgrad.chunk(4, 1)
        dys, acts, cns, tcs, dpres = (_step_views(v) for v in (dy.transpose(0, 1), act, cn, tc, dpre_all))
        gi, gf, gg, go = _gate_views(act, H)
        dpre_gs = _gate_views(dpre_all, H)[2]
        keeps = None if mask is None else _step_views(mask.t().unsqueeze(-1))  # T × (B, 1)
        dus: list[Tensor] = []  # dL/du_t, t = T-1 .. 0
        grads_1, grads_c = _Grads([], []), _Grads([], [])
        linear = PackedLinear(w.t(), B)  # du ↦ W_hᵀ du
        for t in reversed(range(T)):
            keep = None if mask is None else keeps[t]  # (B, 1)
            n_t = None if mask is None else count[t]  # rows counted at step t
            dh_new = dh + dys[t]
            dc_new = dc
            if keep is not None:  # padded rows: state passed through, output 0
                dh_new = torch.where(keep, dh_new, 0.0)
                dc_new = torch.where(keep, dc, 0.0)
                dh_skip, dc_skip = torch.where(keep, 0.0, dh), torch.where(keep, 0.0, dc)
            dchat = TANH_BACKWARD(dh_new * go[t], tcs[t])  # through h = σ(o) tanh(ĉ)
            if norm_c is not None:
                dchat = norm_c.backward(dchat, cns[t], gc, t, keep, n_t, grads_c)
            dc_new = dc_new + dchat
            # dL/d(σ(i), σ(f), tanh(g), σ(o)), then through σ' = σ(1−σ) and tanh' = 1−tanh²
            torch.mul(dc_new, gg[t], out=dg_i)
            torch.mul(dc_new, c_prevs[t], out=dg_f)
            torch.mul(dc_new, gi[t], out=dg_g)
            torch.mul(dh_new, tcs[t], out=dg_o)
            dpre = SIGMOID_BACKWARD(dgrad, acts[t], grad_input=dpres[t])
            TANH_BACKWARD_INTO(dg_g, gg[t], grad_input=dpre_gs[t])
            du = dpre
            if norm_1 is not None:
                du = norm_1.backward(dpre, us[t], g1, t, keep, n_t, grads_1)
                dus.append(du)
            dh = linear(du)  # (B, H)
            dc = dc_new * gf[t]
            if keep is not None:
                dh, dc = dh + dh_skip, dc + dc_skip
        du_all = dpre_all if norm_1 is None else torch.stack(dus[::-1])  # dL/du_t: (T, B, 4H)
        # ∂L/∂W_h = Σ_t du_tᵀ h_{t-1}, as (Hᵀ dU)ᵀ: torch.mm reads both transposed operands in place (faster
        # here than laying them out for oneDNN, which costs a transposed copy of dU)
        dw = torch.mm(hs[:T].reshape(T * B, H).t(), du_all.reshape(T * B, G)).t()  # (4H, H)
        dix = (du_all if summed else dpre_all).transpose(0, 1)  # dL/d ix (u = ix + W_h h if summed): (B, T, 4H)
        dg1 = ds1 = dgc = dbc = None
        if norm_1 is not None:
            dg1, ds1 = grads_1.total()
            ds1 = ds1 if summed else None
        if norm_c is not None:
            dgc, dbc = grads_c.total()
        return dix, dh, dc, dw, dg1, ds1, dgc, dbc, None, None, None, None, None, None
