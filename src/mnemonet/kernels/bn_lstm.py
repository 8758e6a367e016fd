"""The BN-LSTM over a whole sequence as one autograd node, with hand-written backpropagation through time.

:func:`bn_lstm_loop` runs the BN-LSTM (Cooijmans et al., 2017, eqs. 5-8) for all steps: W_x·x for every
step in one matmul, then per step the input normalisation, W_h·h_{t-1}, the gate normalisation, the cell
update and the normalisation of c. Its forward records no autograd graph and its backward walks the steps in
reverse by hand: per step one matmul for the gradient of h_{t-1}, aten's batch-norm backward kernels and a
few pointwise ops; the gradients of W_h and W_x over all steps are one matmul each at the end, as in fused
LSTM kernels. Every normalisation of a step runs while that step's `[B, 4H]` block is in cache (batch
statistics over the B rows of each step, eq. 5), forward and backward.

Speed (``benchmarks/bench_bn_lstm.py``): the buffers of all T steps and their per-step views come from a
:class:`~mnemonet.kernels.workspaces.Pool` (a fresh buffer of several MiB costs page faults on every call);
on CPU in float32 the recurrent matmuls run oneDNN's kernels (as torch's own CPU LSTM does) and tanh is
computed as 2σ(2x) − 1; with several intra-op threads the matmuls use them all and the small per-step ops
one (:class:`~mnemonet.kernels.tricks.StepThreads`: torch would split a step's batch norms over threads at a
loss). It computes what the step path of :class:`~mnemonet.models.bn_lstm.BNLSTMCell` computes
(``tests/kernels`` compare the two, values and gradients, and gradcheck it); first-order gradients only.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from mnemonet.kernels.onednn import PackedLinear
from mnemonet.kernels.tricks import (
    SIGMOID_BACKWARD,
    TANH_BACKWARD,
    TANH_BACKWARD_INTO,
    StepThreads,
    const,
    tanh_into,
)
from mnemonet.kernels.workspaces import Lease, Pool, storage_bytes

_bn_forward = torch.ops.aten.native_batch_norm
_bn_backward = torch.ops.aten.native_batch_norm_backward

# a workspace holds up to four `[T, B, 4H]` buffers: 2 × 26 MiB at (B, T, H) = (32, 100, 512) in float32
_FORWARD_POOL, _BACKWARD_POOL = Pool(256 * 2**20), Pool(256 * 2**20)


class LoopStats(NamedTuple):
    """Batch statistics of a training pass, for the running estimates: means and biased variances.

    Attributes:
        mean_x, var_x: `[T, 4H]` of the input normalisation (BN of W_x·x), empty where the loop has none.
        mean_1, var_1: `[T, 4H]` of the normalisation inside the gates (BN of W_h·h, or of the sum).
        mean_c, var_c: `[T, H]` of the normalisation of c.
        count: `[T]` number of non-padded rows at each step.
    """

    mean_x: Tensor
    var_x: Tensor
    mean_1: Tensor
    var_1: Tensor
    mean_c: Tensor
    var_c: Tensor
    count: Tensor


class NormArgs(NamedTuple):
    """One batch normalisation of the loop: γ, shift (β, or the gate bias folded in) and its mode.

    Attributes:
        gamma: γ `[F]`.
        shift: `[F]` added after normalising, or None.
        training: normalise with each step's batch statistics (else with ``running``).
        running: evaluation: (mean, var) of every step, `[T, F]` each; None in training.
    """

    gamma: Tensor
    shift: Tensor | None
    training: bool
    running: tuple[Tensor, Tensor] | None


def bn_lstm_loop(
    x: Tensor,
    weight_ih: Tensor | None,
    h0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    norm_x: NormArgs | None,
    norm_1: NormArgs | None,
    norm_c: NormArgs | None,
    mask: Tensor | None,
    variant: str,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor, LoopStats]:
    """Run the BN-LSTM for T steps.

    With ``variant`` ``"full"``: pre_t = BN(W_x x_t; γ_x, b) + BN(W_h h_{t-1}; γ_h, 0) (eq. 6) and h_t =
    σ(o)⊙tanh(BN(c_t; γ_c, β_c)) (eq. 8); ``"input_only"``: pre_t = BN(W_x x_t; γ_x, b) + W_h h_{t-1};
    ``"summed"``: pre_t = BN(W_x x_t + W_h h_{t-1}; γ, b). Then c_t = σ(f)⊙c_{t-1} + σ(i)⊙tanh(g) (eq. 7)
    and, without BN of c, h_t = σ(o)⊙tanh(c_t).

    Args:
        x: `[B, T, I]` inputs; or, with ``weight_ih`` None, the input term of every step `[B, T, 4H]`
            already computed (the ``"input_only"`` variant with sequence-wise statistics).
        weight_ih: W_x `[4H, I]`, or None (see ``x``).
        h0, c0: `[B, H]` initial state.
        weight_hh: W_h `[4H, H]`.
        norm_x: the input normalisation (``"full"``, ``"input_only"``; its shift is the gate bias b), or None.
        norm_1: the gate normalisation (of W_h·h for ``"full"``, of the sum with shift b for ``"summed"``).
        norm_c: the normalisation of c (``"full"``), or None.
        mask: `[B, T]` bool, true at real steps; padded rows keep their state, output 0, and are left
            out of the batch statistics. None: no padding.
        variant: ``"full"``, ``"summed"`` or ``"input_only"``.
        eps: ε of the normalisations.

    Returns:
        y `[B, T, H]`, h_T, c_T `[B, H]` (at each row's last real step), and the batch statistics of
        every step (empty for a normalisation in evaluation mode or absent).
    """
    params = []
    for norm in (norm_x, norm_1, norm_c):
        params += [None, None] if norm is None else [norm.gamma, norm.shift]
    modes = tuple(None if n is None else (n.training, n.running) for n in (norm_x, norm_1, norm_c))
    out = _Loop.apply(x, weight_ih, h0, c0, weight_hh, *params, mask, variant, modes, eps)
    y, h, c, *stats = out
    return y, h, c, LoopStats(*stats)


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
    :meth:`backward` takes and returns gradients of the unscaled BN(u; γ, shift) and keeps each step's
    dL/dγ and dL/dshift.
    """

    def __init__(self, gamma: Tensor, shift: Tensor | None, mode: tuple, eps: float, factor: float = 1.0) -> None:
        self.training, running = mode
        self.eps = eps
        self.gamma_raw = gamma
        self.means: list[Tensor] = []  # per step, training
        self.rstds: list[Tensor] = []
        self.dgammas: list[Tensor] = []  # per step, backward
        self.dshifts: list[Tensor] = []
        # γ and shift of the forward output (× factor: exact for factor 2, so the output is exactly 2·BN)
        self.gamma = gamma if factor == 1.0 else gamma * factor
        self.shift = shift if factor == 1.0 or shift is None else shift * factor
        if not self.training:
            mean, var = running  # (T, F) each
            rstd = torch.rsqrt(var + eps)
            self.means, self.rstds = mean.unbind(0), rstd.unbind(0)  # T × (F,)
            self.dscales = (rstd * gamma).unbind(0)  # dBN/du: T × (F,)
            scale = rstd * self.gamma  # (T, F)
            offset = -mean * scale if self.shift is None else self.shift - mean * scale  # (T, F)
            self.scales, self.offsets = scale.unbind(0), offset.unbind(0)  # T × (F,)

    def forward(self, u: Tensor, t: int, keep: Tensor | None, count: Tensor | None) -> Tensor:
        """factor · BN of step t's `[B, F]` input (eq. 5), a new tensor."""
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

    def batch_stats(self) -> tuple[Tensor, Tensor]:
        """(mean, biased variance) `[T, F]` of a training pass."""
        return torch.stack(self.means), torch.stack(self.rstds).pow_(-2).sub_(self.eps)

    def backward(self, dy: Tensor, u: Tensor, t: int, keep: Tensor | None, count: Tensor | None,
                 out: Tensor | None = None) -> Tensor:  # fmt: skip
        """dL/du `[B, F]` for step t given dL/dy (y = BN(u; γ, shift)), into ``out`` if given."""
        mean, rstd, gamma = self.means[t], self.rstds[t], self.gamma_raw
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
                du = dy * self.dscales[t]
        self.dgammas.append(dgamma)
        self.dshifts.append(dshift)
        return du if out is None else out.copy_(du)

    def grads(self) -> tuple[Tensor, Tensor]:
        """dL/dγ and dL/dshift `[F]` summed over the steps of this backward pass (then forgotten)."""
        dgamma, dshift = torch.stack(self.dgammas).sum(0), torch.stack(self.dshifts).sum(0)
        self.dgammas, self.dshifts = [], []
        return dgamma, dshift


def _gate_activations(pre: Tensor, out: Tensor, out_g: Tensor, H: int) -> None:
    """σ(ĩ), σ(f̃), tanh(g̃), σ(õ) of ``pre`` `[B, 4H]` into ``out`` (``out_g``: its g block; ``pre`` is overwritten)."""
    pre_g = pre[:, 2 * H : 3 * H]
    if pre.device.type != "cpu":
        torch.sigmoid(pre, out=out)
        torch.tanh(pre_g, out=out_g)
        return
    two = const(2.0, pre)
    pre_g.mul_(two)
    torch.sigmoid(pre, out=out)
    torch.addcmul(const(-1.0, pre), out_g, two, out=out_g)  # tanh(g̃) = 2σ(2g̃) − 1


def _gate_views(act: Tensor, H: int) -> list[tuple[Tensor, ...]]:
    """σ(i), σ(f), tanh(g), σ(o) of every step as views of ``act`` `[T, B, 4H]`: 4 lists of T `[B, H]`."""
    T, B, _ = act.shape
    blocks = act.view(T, B, 4, H)  # (T, B, 4, H)
    return [blocks[:, :, k].unbind(0) for k in range(4)]


class _Forward(NamedTuple):
    """A forward workspace: buffers of all T steps and their per-step views."""

    act: Tensor  # (T, B, 4H): σ(i), σ(f), tanh(g), σ(o)
    acts: tuple[Tensor, ...]
    gates: list[tuple[Tensor, ...]]  # σ(i), σ(f), tanh(g), σ(o): 4 × T × (B, H)
    cns: tuple[Tensor, ...]  # c_t of every row (input of BN of c), before padded rows are restored: T × (B, H)
    tcs: tuple[Tensor, ...]  # tanh(BN(c_t)) or tanh(c_t): T × (B, H)
    wx: Tensor | None  # (T, B, 4H): W_x x_t of every step (when the loop computes it)
    wxs: tuple[Tensor, ...] | None
    hs: Tensor | None  # (T + 1, B, H): carried h (with padding: padded rows keep theirs)
    cs: Tensor | None  # (T + 1, B, H): carried c (with padding)
    nbytes: int


def _make_forward(T: int, B: int, H: int, G: int, like: Tensor, computes_wx: bool, padded: bool) -> _Forward:
    new = like.new_empty
    act, cn, tc = new(T, B, G), new(T, B, H), new(T, B, H)
    wx = new(T, B, G) if computes_wx else None
    hs, cs = (new(T + 1, B, H), new(T + 1, B, H)) if padded else (None, None)
    return _Forward(
        act, act.unbind(0), _gate_views(act, H), cn.unbind(0), tc.unbind(0), wx,
        None if wx is None else wx.unbind(0), hs, cs, storage_bytes(act, cn, tc, wx, hs, cs),
    )  # fmt: skip


class _Backward(NamedTuple):
    """A backward workspace: gradient buffers of all T steps (the pooled ones) and their per-step views."""

    dgrad: Tensor  # (B, 4H): dL/d(σ(i), σ(f), tanh(g), σ(o)) of one step
    dgrad_blocks: tuple[Tensor, ...]  # its 4 gate blocks (B, H)
    dpre: Tensor  # (T, B, 4H), or (1, B, 4H) when only one step's is needed: dL/d pre_t
    dpres: tuple[Tensor, ...]
    dpre_gs: tuple[Tensor, ...]  # g blocks of dpres
    du: Tensor | None  # (T, B, 4H): dL/du_t, u the input of the gate normalisation
    dus: tuple[Tensor, ...] | None
    dwx: Tensor | None  # (T, B, 4H): dL/d(W_x x_t), through the input normalisation
    dwxs: tuple[Tensor, ...] | None
    nbytes: int


def _make_backward(T: int, B: int, G: int, like: Tensor, all_dpre: bool, has_1: bool, has_x: bool) -> _Backward:
    new = like.new_empty
    dgrad = new(B, G)
    dpre = new(T if all_dpre else 1, B, G)
    du = new(T, B, G) if has_1 else None
    dwx = new(T, B, G) if has_x else None
    H = G // 4
    return _Backward(
        dgrad, dgrad.chunk(4, 1), dpre, dpre.unbind(0), dpre[:, :, 2 * H : 3 * H].unbind(0),
        du, None if du is None else du.unbind(0), dwx, None if dwx is None else dwx.unbind(0),
        storage_bytes(dgrad, dpre, du, dwx),
    )  # fmt: skip


class _Loop(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x, w_ih, h0, c0, w, gx, sx, g1, s1, gc, bc, mask, variant, modes, eps):  # type: ignore[override]
        B, T = x.shape[:2]
        H = h0.shape[1]
        G = 4 * H
        full, summed = variant == "full", variant == "summed"
        cpu = x.device.type == "cpu"
        computes_wx = w_ih is not None
        key = (T, B, H, computes_wx, mask is not None, x.dtype, x.device)
        ws = _FORWARD_POOL.take(key, lambda: _make_forward(T, B, H, G, x, computes_wx, mask is not None))
        ctx.lease = Lease(_FORWARD_POOL, key, ws, ws.nbytes)  # back to the pool when the node is freed
        if computes_wx:  # W_x x_t for every step, one matmul, time major
            x_flat = x.transpose(0, 1).reshape(T * B, x.shape[2])  # (T·B, I)
            torch.mm(x_flat, w_ih.t(), out=ws.wx.view(T * B, G))
            wxs = ws.wxs
        else:
            x_flat = None
            wxs = x.transpose(0, 1).unbind(0)  # the given input term: T × (B, 4H)
        mode_x, mode_1, mode_c = modes
        norm_x = None if mode_x is None else _StepNorm(gx, sx, mode_x, eps)
        norm_1 = None if mode_1 is None else _StepNorm(g1, s1, mode_1, eps)
        # on CPU the normalisation of c returns 2·BN(c), so that tanh(BN(c)) = 2σ(2·BN(c)) − 1 takes no extra op
        norm_c = None if mode_c is None else _StepNorm(gc, bc, mode_c, eps, 2.0 if cpu else 1.0)
        linear = PackedLinear(w, B)  # h ↦ W_h h
        acts, cns, tcs = ws.acts, ws.cns, ws.tcs
        gi, gf, gg, go = ws.gates
        hy = x.new_empty(T + 1, B, H)  # h_0, then the outputs y_t: without padding, hy[t] is h_{t-1} of step t
        hy[0] = h0
        ys = hy[1:]  # (T, B, H)
        yss = ys.unbind(0)
        us = [] if norm_1 is not None else None  # input of the gate normalisation, per step
        keeps = None
        if mask is not None:  # carried states differ from the new ones on padded rows: keep them
            ws.hs[0], ws.cs[0] = h0, c0
            count = mask.sum(0).to(x.dtype)  # (T,)
            keeps = mask.t().unsqueeze(-1).unbind(0)  # T × (B, 1)
            hss, css = ws.hs.unbind(0), ws.cs.unbind(0)
        else:
            count = torch.full((T,), B, dtype=x.dtype, device=x.device)
        two, minus_one = const(2.0, x), const(-1.0, x)
        h, c = h0, c0
        threads = StepThreads(cpu)
        try:
            for t in range(T):
                keep = None if mask is None else keeps[t]  # (B, 1)
                n_t = None if mask is None else count[t]  # rows counted at step t
                threads.all()
                wh = linear(h)  # W_h h_{t-1}: (B, 4H)
                threads.one()
                if summed:  # BN(W_x x + W_h h; γ, b)
                    u = wh.add_(wxs[t])
                    us.append(u)
                    pre = norm_1.forward(u, t, keep, n_t)
                else:
                    ix = wxs[t] if norm_x is None else norm_x.forward(wxs[t], t, keep, n_t)  # BN(W_x x; γ_x, b)
                    if full:  # BN(W_h h; γ_h, 0) + BN(W_x x; γ_x, b)   (eq. 6)
                        us.append(wh)
                        pre = norm_1.forward(wh, t, keep, n_t).add_(ix)
                    else:  # W_h h + BN(W_x x; γ_x, b)
                        pre = wh.add_(ix)
                _gate_activations(pre, acts[t], gg[t], H)
                c_new = torch.mul(gf[t], c, out=cns[t]).addcmul_(gi[t], gg[t])  # eq. 7
                if norm_c is None:
                    tanh_into(c_new, out=tcs[t])
                elif cpu:  # 2σ(2·BN(c)) − 1
                    torch.sigmoid(norm_c.forward(c_new, t, keep, n_t), out=tcs[t])
                    torch.addcmul(minus_one, tcs[t], two, out=tcs[t])
                else:
                    torch.tanh(norm_c.forward(c_new, t, keep, n_t), out=tcs[t])
                h_new = torch.mul(go[t], tcs[t], out=yss[t])  # eq. 8
                if keep is None:
                    h, c = h_new, c_new
                else:
                    h = torch.where(keep, h_new, h, out=hss[t + 1])
                    c = torch.where(keep, c_new, c, out=css[t + 1])
                    yss[t].mul_(keep)
        finally:
            threads.all()
        stats = []
        for norm in (norm_x, norm_1, norm_c):
            stats += norm.batch_stats() if norm is not None and norm.training else [x.new_empty(0), x.new_empty(0)]
        stats.append(count.clone())
        ctx.save_for_backward(c0, w, w_ih, mask)
        ctx.x_flat, ctx.wxs = x_flat, wxs
        ctx.shape = (B, T, G)
        ctx.norms = (norm_x, norm_1, norm_c)
        ctx.buffers = (us, hy, count)
        ctx.variant = variant
        ctx.mark_non_differentiable(*stats)
        return ys.transpose(0, 1), h.clone(), c.clone(), *stats

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy, dh, dc, *_):  # type: ignore[override]
        c0, w, w_ih, mask = ctx.saved_tensors
        us, hy, count = ctx.buffers
        ws = ctx.lease.workspace
        norm_x, norm_1, norm_c = ctx.norms
        summed = ctx.variant == "summed"
        B, T, G = ctx.shape
        H = G // 4
        computes_wx = w_ih is not None
        wxs = ctx.wxs
        if mask is None:  # no padding: h_{t-1} = y_{t-1} and c_{t-1} = c_new of step t-1
            hs = hy  # (T + 1, B, H)
            c_prevs = (c0, *ws.cns[: T - 1])
        else:
            hs = ws.hs
            c_prevs = ws.cs.unbind(0)
        # dL/d pre_t of every step where W_h's gradient (input_only) or the input's (a given input term) needs it
        all_dpre = norm_1 is None
        key = (T, B, G, all_dpre, norm_1 is not None, norm_x is not None, dy.dtype, dy.device)
        wb = _BACKWARD_POOL.take(key, lambda: _make_backward(T, B, G, dy, all_dpre, norm_1 is not None,
                                                              norm_x is not None))  # fmt: skip
        dpre_all, dpres, dpre_gs = wb.dpre, wb.dpres, wb.dpre_gs
        dgrad = wb.dgrad
        dg_i, dg_f, dg_g, dg_o = wb.dgrad_blocks
        dys = dy.transpose(0, 1).unbind(0)
        acts, tcs, cns = ws.acts, ws.tcs, ws.cns
        gi, gf, gg, go = ws.gates
        keeps = None if mask is None else mask.t().unsqueeze(-1).unbind(0)  # T × (B, 1)
        linear = PackedLinear(w.t(), B)  # du ↦ W_hᵀ du
        threads = StepThreads(dy.device.type == "cpu")
        try:
            for t in reversed(range(T)):
                keep = None if mask is None else keeps[t]  # (B, 1)
                n_t = None if mask is None else count[t]  # rows counted at step t
                k = t if all_dpre else 0
                dh_new = dh + dys[t]
                if keep is not None:  # padded rows: state passed through, output 0
                    dh_new = torch.where(keep, dh_new, 0.0)
                    dh_skip, dc_skip = torch.where(keep, 0.0, dh), torch.where(keep, 0.0, dc)
                    dc = torch.where(keep, dc, 0.0)
                dchat = TANH_BACKWARD(dh_new * go[t], tcs[t])  # through h = σ(o) tanh(ĉ)
                if norm_c is not None:
                    dchat = norm_c.backward(dchat, cns[t], t, keep, n_t)
                dc_new = dchat.add_(dc)
                # dL/d(σ(i), σ(f), tanh(g), σ(o)), then through σ' = σ(1−σ) and tanh' = 1−tanh²
                torch.mul(dc_new, gg[t], out=dg_i)
                torch.mul(dc_new, c_prevs[t], out=dg_f)
                torch.mul(dc_new, gi[t], out=dg_g)
                torch.mul(dh_new, tcs[t], out=dg_o)
                dpre = SIGMOID_BACKWARD(dgrad, acts[t], grad_input=dpres[k])
                TANH_BACKWARD_INTO(dg_g, gg[t], grad_input=dpre_gs[k])
                if norm_x is not None:
                    norm_x.backward(dpre, wxs[t], t, keep, n_t, out=wb.dwxs[t])
                du = dpre if norm_1 is None else norm_1.backward(dpre, us[t], t, keep, n_t, out=wb.dus[t])
                threads.all()
                dh = linear(du)  # (B, H)
                threads.one()
                dc = dc_new * gf[t]
                if keep is not None:
                    dh, dc = dh + dh_skip, dc + dc_skip
        finally:
            threads.all()
        du_all = dpre_all if norm_1 is None else wb.du  # dL/du_t: (T, B, 4H)
        # ∂L/∂W_h = Σ_t du_tᵀ h_{t-1}, as (Hᵀ dU)ᵀ: torch.mm reads both transposed operands in place
        dw = torch.mm(hs[:T].reshape(T * B, H).t(), du_all.reshape(T * B, G)).t()  # (4H, H)
        # dL/d(input term): through the input normalisation, or the sum's (u = W_x x + W_h h), or directly
        d_in = wb.dwx if norm_x is not None else (du_all if summed else dpre_all)  # (T, B, 4H)
        dx = dw_ih = None
        if computes_wx:  # W_x x for all steps was one matmul: so are its gradients
            d_flat = d_in.view(T * B, G)
            if ctx.needs_input_grad[1]:
                dw_ih = torch.mm(d_flat.t(), ctx.x_flat)  # (4H, I)
            if ctx.needs_input_grad[0]:
                dx = torch.mm(d_flat, w_ih).view(T, B, -1).transpose(0, 1)  # (B, T, I)
        elif ctx.needs_input_grad[0]:
            dx = d_in.transpose(0, 1).clone()  # (B, T, 4H): out of the pooled buffer
        grads = []
        for norm in (norm_x, norm_1, norm_c):
            dgamma, dshift = (None, None) if norm is None else norm.grads()
            grads += [dgamma, dshift if norm is not None and norm.shift is not None else None]
        _BACKWARD_POOL.give(key, wb, wb.nbytes)
        return dx, dw_ih, dh, dc, dw, *grads, None, None, None, None
