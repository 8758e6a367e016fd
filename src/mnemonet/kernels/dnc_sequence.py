"""A whole DNC sequence as one autograd node: the paper's DNC with an LSTM controller, every step, by hand.

For the paper's configuration (an ``LSTMCell`` controller, one write head, dense links, no options) the
per-step autograd graph costs as much as the arithmetic: each step records several nodes, its gradients
are summed and carried between them, and the engine schedules them one by one. :class:`DNCSequence`
runs all T steps in one ``forward`` (the LSTM update of ``lstm_step``, ξ_t = W_ξ h_t + b, and the
memory step of ``fused.access_forward``) and all T vector-Jacobian products in one ``backward``, in
reverse, carrying the state gradients itself. The weight gradients ∂L/∂W = Σ_t g_t^T x_t are formed once
per sequence as one matmul each. With the C kernels (``native``) a step is two torch matmuls (W_hr [h; r],
ξ_t) and two C calls (the LSTM's pointwise update, the memory step), and its VJP the same. Values are those
of the step loop (to rounding); ``tests`` compare both and run ``gradcheck`` in float64.

Layout: the controller's recurrent input at step t is [h_{t−1}; r_{t−1}], and the output layer reads
[h_t; r_t]. Both live in one buffer HR `[T + 1, B, H + R·W]` (row 0 holds the initial state), so the
controller multiplies HR[t] by [W_hh, W_ih^(r)] and the output layer reads HR[1:].

Padding: sequences shorter than T run on through the padded steps (whose outputs the caller zeroes), and
the returned final state of each sequence is the one after its own last real step, so padded steps never
reach a loss and get zero gradient.

Workspaces: the per-step buffers (ξ_t, gates, M_t, L_t, ...) and their views are made once per shape and
reused by later calls (:class:`~mnemonet.kernels.workspaces.Pool`): making the views costs about as much as
the kernels they save, and reused buffers are warm in cache. A forward's workspace stays with its autograd
node until the node is freed (so ``retain_graph`` and several graphs alive at once are safe); a backward's
only while it runs. At most two free workspaces of each kind are kept, none over 64 MiB;
:func:`release_workspaces` drops them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from mnemonet.kernels import native
from mnemonet.kernels.dnc_access import access_backward, access_forward, grad_views, step_views
from mnemonet.kernels.lstm_step import gate_grad_views, gate_views, lstm_cell_backward, lstm_cell_forward
from mnemonet.kernels.workspaces import Lease, Pool, release_workspaces, storage_bytes

__all__ = ["DNCSequence", "release_workspaces"]

_FORWARD_POOL, _BACKWARD_POOL = Pool(), Pool()


def _first_row(pre: Tensor, h0: Tensor, r0: Tensor) -> Tensor:
    """HR `[T + 1, B, H + R·W]` with row 0 = [h_0; r_0] (the other rows are written by the steps)."""
    T, B, H = pre.shape[0], pre.shape[1], h0.shape[1]
    HR = pre.new_empty(T + 1, B, H + r0.shape[1] * r0.shape[2])
    HR[0, :, :H] = h0
    HR[0, :, H:] = r0.flatten(1)
    return HR


def _weight_grad(grads: Tensor, inputs: Tensor) -> Tensor:
    """∂L/∂W = Σ_t g_t^T x_t `[out, in]` as one matmul over all T·B rows, from grads `[T, B, out]` and inputs
    `[T, B, in]` (rows may be strided: HR's h part). BLAS takes the transposed view as it is; oneDNN wanted both
    operands transposed into new buffers first, which cost more than the matmul saved (B16 N64 W32 R4 T41)."""
    return torch.mm(grads.flatten(0, 1).t(), inputs.flatten(0, 1))  # (out, T·B) @ (T·B, in)


def _controller_grads(G_gates: Tensor, G_xi: Tensor, HR: Tensor, g_init: Tensor, dims: tuple[int, int]) -> tuple:
    """(∂L/∂W_hr, ∂L/∂W_ξ, ∂L/∂b_ξ, ∂L/∂h_0, ∂L/∂r_0) from the per-step gradients, each weight's as one matmul."""
    R, W = dims
    H = HR.shape[2] - R * W
    g_w_hr = _weight_grad(G_gates, HR[:-1])  # Σ_t g_t^T [h_{t−1}; r_{t−1}]
    g_w_xi = _weight_grad(G_xi, HR[1:, :, :H])  # Σ_t g_ξ_t^T h_t
    g_h0, g_r0 = g_init[:, :H].clone(), g_init[:, H:].unflatten(-1, (R, W)).clone()
    return g_w_hr, g_w_xi, G_xi.sum((0, 1)), g_h0, g_r0


def _ends(last: Tensor | None, device: torch.device) -> dict[int, Tensor]:
    """{step t: indices of the sequences whose last real step is t}; empty without padding (``last`` None)."""
    if last is None:
        return {}
    out = {}
    for t in torch.unique(last).tolist():
        out[int(t)] = torch.nonzero(last == t).flatten().to(device)
    return out


def _record_ends(finals: list[Tensor] | None, ends: dict[int, Tensor], t: int, state: tuple[Tensor, ...]) -> None:
    """Copy ``state`` after step t into ``finals`` for the padded sequences whose last real step is t."""
    if t in ends:
        idx = ends[t]
        for final, y in zip(finals, state, strict=True):  # type: ignore[arg-type]
            final.index_copy_(0, idx, y.index_select(0, idx))


class DNCSequence(torch.autograd.Function):
    """``(pre, W_hr, W_ξ, b_ξ, h0, c0, r0, M0, u0, L0, p0, w^r_0, w^w_0) -> (HR, h, c, r, M, u, L, p, w^r, w^w)``.

    Shapes: pre `[T, B, 4H]` (W_ih^(x) x_t + b for all t, time major), W_hr `[4H, H + R·W]` = [W_hh, W_ih^(r)],
    W_ξ `[Z, H]`, b_ξ `[Z]`, h0 `[B, H]`, c0 `[B, H]`, r0 `[B, R, W]`, M0 `[B, N, W]`, u0 `[B, N]`, L0 `[B, N, N]`,
    p0 `[B, N]`, w^r_0 `[B, R, N]`, w^w_0 `[B, N]`. Returns HR `[T + 1, B, H + R·W]` (row t + 1 = [h_t; r_t]) and
    the final h, c, r, M, u, L, p, w^r, w^w (each sequence's state after its last real step, see ``last``).

    Non-tensor arguments: ``last`` `[B]` int64 (each sequence's last real step, or None when all run T
    steps), ``dims`` (R, W), ``keep`` (whether to keep what backward needs; False under no_grad).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        pre: Tensor,
        w_hr: Tensor,
        w_xi: Tensor,
        b_xi: Tensor,
        h0: Tensor,
        c0: Tensor,
        r0: Tensor,
        M: Tensor,
        u: Tensor,
        L: Tensor,
        p: Tensor,
        wr: Tensor,
        ww: Tensor,
        last: Tensor | None,
        dims: tuple[int, int],
        keep: bool,
    ) -> tuple[Tensor, ...]:
        fns = native.functions(pre.dtype) if pre.device.type == "cpu" else None
        if fns is not None:
            ctx.native = fns
            inputs = (pre, w_hr, w_xi, b_xi, h0, c0, r0, M, u, L, p, wr, ww)
            return _forward_native(ctx, fns, inputs, last, dims, keep)
        ctx.native = None
        R, W = dims
        T, B = pre.shape[0], pre.shape[1]
        H, N = h0.shape[1], M.shape[1]
        HR = _first_row(pre, h0, r0)
        # per-step buffers and views (see Pool); without backward two steps' buffers take turns
        n_buf, Z = (T if keep else min(T, 2)), w_xi.shape[0]
        key = (n_buf, B, N, R, W, H, Z, pre.dtype, pre.device)

        def make() -> tuple[Any, ...]:
            XI = pre.new_empty(n_buf, B, Z)
            views, gates = step_views(XI, N, R, W), gate_views(pre.new_empty(n_buf, B, 4 * H))
            return XI.unbind(0), views, gates, storage_bytes(*views[0], *gates[0])

        workspace = _FORWARD_POOL.take(key, make)
        xis, views, gates, nbytes = workspace
        pres, HRs = pre.unbind(0), HR.unbind(0)
        h_out, r_out = HR[:, :, :H].unbind(0), HR[:, :, H:].unflatten(-1, (R, W)).unbind(0)
        w_hr_t, w_xi_t = w_hr.t(), w_xi.t()
        ends = _ends(last, pre.device)
        M_t, u, p, ww = M.mT, u.unsqueeze(1), p.unsqueeze(1), ww.unsqueeze(1)  # vectors over slots: (B, 1, N)
        finals = None if last is None else [x.clone() for x in (h0, c0, r0, M, u, L, p, wr, ww)]
        c, m_inv = c0, None
        steps = []
        for t in range(T):
            k = t % n_buf
            torch.addmm(pres[t], HRs[t], w_hr_t, out=gates[k].gates)
            h, c_new, lstm_saved = lstm_cell_forward(gates[k], c, h_out[t + 1])
            torch.addmm(b_xi, h, w_xi_t, out=xis[k])  # ξ_t = W_ξ h_t + b
            x = views[k]
            (r, u, p, wr, ww, _, m_inv), saved = access_forward(x, M, M_t, u, L, p, wr, ww, m_inv)
            r_out[t + 1].copy_(r)
            M, M_t, L = x.memory, x.memory_t, x.link
            if keep:
                steps.append((c, lstm_saved, saved))
            c = c_new
            _record_ends(finals, ends, t, (h_out[t + 1], c, r_out[t + 1], M, u, L, p, wr, ww))
        if finals is None:  # fresh tensors: ctx must not hold outputs (a reference cycle), nor buffers share them
            finals = [y.clone() for y in (h_out[T], c, r_out[T], M, u, L, p, wr, ww)]
        lease = Lease(_FORWARD_POOL, key, workspace, nbytes)  # back to the pool when ctx (or this frame) lets go
        if keep:
            ctx.lease = lease
            ctx.steps = steps
            ctx.ends = ends
            ctx.dims = dims
            ctx.save_for_backward(HR, w_hr, w_xi)
        ctx.set_materialize_grads(False)
        h, c, r, M, u, L, p, wr, ww = finals
        return HR, h, c, r, M, u.squeeze(1), L, p.squeeze(1), wr, ww.squeeze(1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_HR: Tensor | None, *g_finals: Tensor | None) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        if ctx.native is not None:
            return _backward_native(ctx, g_HR, g_finals)
        HR, w_hr, w_xi = ctx.saved_tensors
        R, W = ctx.dims
        steps, ends = ctx.steps, ctx.ends
        T, B = len(steps), HR.shape[1]
        H = HR.shape[2] - R * W
        g_h_final, g_c, g_r_final, g_M, g_u, g_L, g_p, g_wr, g_ww = g_finals  # h and r reach the steps through HR

        def row(g: Tensor | None) -> Tensor | None:  # u, p and w^w are (B, 1, N) rows inside
            return None if g is None else g.unsqueeze(1)

        g_finals = (g_c, g_M, row(g_u), g_L, row(g_p), g_wr, row(g_ww))
        G_gates = HR.new_empty(T, B, w_hr.shape[0])  # ∂L/∂a_t, the pre-activations (returned: not pooled)
        Z = w_xi.shape[0]
        key = (T, B, H, R, W, Z, HR.dtype, HR.device)

        def make() -> tuple[Any, ...]:
            G_xi = HR.new_empty(T, B, Z)  # ∂L/∂ξ_t
            G_HR = HR.new_empty(T + 1, B, H + R * W)  # row t: ∂L/∂HR[t] = ∂L/∂[h_{t−1}; r_{t−1}]
            h_part, r_part = G_HR[:, :, :H].unbind(0), G_HR[:, :, H:].unflatten(-1, (R, W)).unbind(0)
            return G_xi, G_HR, grad_views(G_xi, R, W), G_HR.unbind(0), h_part, r_part, storage_bytes(G_xi, G_HR)

        workspace = _BACKWARD_POOL.take(key, make)
        G_xi, G_HR, G_xis, G_HRs, g_h_views, g_r_views, nbytes = workspace
        if g_HR is None:  # row t: ∂L/∂HR[t] from the outputs; step t's controller adds its part below
            G_HR.zero_()
        else:
            G_HR.copy_(g_HR)
        gate_grads = gate_grad_views(G_gates)
        # carried gradients of the state after step t: c, M, u, L, p, w^r, w^w (None = zero)
        carry: list[Tensor | None] = [None] * 7
        owned = [False] * 7
        if not ends:  # no padding: the final state is the state after step T − 1
            carry = list(g_finals)
            if g_h_final is not None:
                g_h_views[T].add_(g_h_final)
            if g_r_final is not None:
                g_r_views[T].add_(g_r_final)
        for t in range(T - 1, -1, -1):
            if t in ends:
                idx = ends[t]
                for view, g_final in ((g_h_views[t + 1], g_h_final), (g_r_views[t + 1], g_r_final)):
                    if g_final is not None:
                        view.index_add_(0, idx, g_final.index_select(0, idx))
                for k, g_final in enumerate(g_finals):
                    if g_final is None:
                        continue
                    if carry[k] is None or not owned[k]:
                        carry[k] = torch.zeros_like(g_final) if carry[k] is None else carry[k].clone()
                        owned[k] = True
                    carry[k].index_add_(0, idx, g_final.index_select(0, idx))
            c_prev, lstm_saved, saved = steps[t]
            g_c, g_M, g_u, g_L, g_p, g_wr, g_ww = carry
            g_M, g_u, g_L, g_p, g_wr, g_ww = access_backward(
                saved, g_r_views[t + 1], g_M, g_u, g_L, g_p, g_wr, g_ww, G_xis[t], owned[1], owned[3]
            )
            g_h = torch.addmm(g_h_views[t + 1], G_xis[t].whole, w_xi)  # h_t feeds ξ_t and HR
            g_gates, g_c = lstm_cell_backward(lstm_saved, c_prev, g_h, g_c, gate_grads[t])
            G_HRs[t].addmm_(g_gates, w_hr)  # ∂L/∂[h_{t−1}; r_{t−1}] through step t's controller
            carry = [g_c, g_M, g_u, g_L, g_p, g_wr, g_ww]
            owned = [True] * 7
        # rows whose final state is their initial state (no real step) cannot occur: lengths >= 1
        g_w_hr, g_w_xi, g_b_xi, g_h0, g_r0 = _controller_grads(G_gates, G_xi, HR, G_HRs[0], ctx.dims)
        _BACKWARD_POOL.give(key, workspace, nbytes)
        g_c, g_M, g_u, g_L, g_p, g_wr, g_ww = carry
        return (
            G_gates, g_w_hr, g_w_xi, g_b_xi, g_h0, g_c, g_r0,
            g_M, g_u.squeeze(1), g_L, g_p.squeeze(1), g_wr, g_ww.squeeze(1), None, None, None,
        )  # fmt: skip


def _pointers(x: Tensor) -> list[int]:
    """The address of each ``x[t]`` (x contiguous)."""
    step = x.stride(0) * x.element_size()
    return [x.data_ptr() + t * step for t in range(x.shape[0])]


def _forward_native(
    ctx: Any, fns: dict[str, Any], inputs: tuple[Tensor, ...], last: Tensor | None, dims: tuple[int, int], keep: bool
) -> tuple[Tensor, ...]:
    """:meth:`DNCSequence.forward` (same arguments) with the LSTM's pointwise step and the memory step in C
    (``native``); the two matmuls of a step (W_hr [h; r] and ξ_t) stay torch's."""
    pre, w_hr, w_xi, b_xi, h0, c0, r0, M, u, L, p, wr, ww = inputs
    R, W = dims
    T, B = pre.shape[0], pre.shape[1]
    H, N, Z = h0.shape[1], M.shape[1], w_xi.shape[0]
    row = H + R * W
    HR = _first_row(pre, h0, r0)
    n_buf = T if keep else min(T, 2)  # without backward two steps' buffers take turns
    key = ("native", n_buf, B, N, R, W, H, Z, pre.dtype, pre.device)

    def make() -> tuple[Any, ...]:
        XI = pre.new_empty(n_buf, B, Z)
        states = [pre.new_empty(n_buf, B, *shape) for shape in ((N, W), (N,), (N, N), (N,), (R, N), (N,))]
        saved = pre.new_empty(n_buf, B, fns["dnc_saved_size"](N, W, R))
        phi = torch.empty(n_buf, B, N, dtype=torch.int32, device=pre.device)
        tmp = torch.empty(N, dtype=torch.int32, device=pre.device)
        mm = pre.new_empty(B, 4 * H)  # [h_{t−1}; r_{t−1}] W_hr^T
        act, cs, tc = pre.new_empty(n_buf, B, 4 * H), pre.new_empty(n_buf, B, H), pre.new_empty(n_buf, B, H)
        ptrs = [_pointers(XI), list(zip(*(_pointers(s) for s in states), strict=True)), _pointers(saved)]
        ptrs += [_pointers(phi), tmp.data_ptr(), _pointers(act), _pointers(cs), _pointers(tc)]
        views = list(zip(*(s.unbind(0) for s in states), strict=True))  # the state after each step
        for x in (*states, saved):  # tens of MiB written once per step: huge pages spare the TLB misses
            native.advise_huge(x)
        nbytes = storage_bytes(XI, *states, saved, phi, mm, act, cs, tc)
        return XI, states, saved, phi, tmp, mm, act, cs, tc, ptrs, views, XI.unbind(0), cs.unbind(0), nbytes

    workspace = _FORWARD_POOL.take(key, make)
    *_, mm, _, _, _, ptrs, views, xis, cs, nbytes = workspace
    xi_ptrs, state_ptrs, saved_ptrs, phi_ptrs, tmp_ptr, act_ptrs, c_ptrs, tc_ptrs = ptrs
    init = [x.contiguous() for x in (M, u, L, p, wr, ww)]  # the state before step 0, (B, ...) each
    c0 = c0.contiguous()
    pre = pre.contiguous()
    HRs = HR.unbind(0)
    h_out, r_out = HR[:, :, :H].unbind(0), HR[:, :, H:].unflatten(-1, (R, W)).unbind(0)
    w_hr_t, w_xi_t = w_hr.t(), w_xi.t()
    el = HR.element_size()
    hr_ptr, pre_ptr, pre_step, mm_ptr = HR.data_ptr(), pre.data_ptr(), B * 4 * H * el, mm.data_ptr()
    ends = _ends(last, pre.device)
    finals = None if last is None else [x.clone() for x in (h0, c0, r0, *init)]
    lstm, forward = fns["dnc_lstm_forward"], fns["dnc_access_forward"]
    prev, c_prev = [x.data_ptr() for x in init], c0.data_ptr()
    for t in range(T):
        k = t % n_buf
        torch.mm(HRs[t], w_hr_t, out=mm)
        h_ptr = hr_ptr + (t + 1) * B * row * el  # h_t and r_t go into HR[t + 1]
        lstm(B, H, mm_ptr, pre_ptr + t * pre_step, c_prev, c_ptrs[k], h_ptr, row, act_ptrs[k], tc_ptrs[k])
        torch.addmm(b_xi, h_out[t + 1], w_xi_t, out=xis[k])  # ξ_t = W_ξ h_t + b
        now = state_ptrs[k]  # M_t, u_t, L_t, p_t, w^r_t, w^w_t
        # the sort of step t starts from step t − 1's order
        forward(
            B, N, W, R, xi_ptrs[k], Z, *prev, *now, h_ptr + H * el, row, saved_ptrs[k], phi_ptrs[k],
            phi_ptrs[(t - 1) % n_buf] if t else None, tmp_ptr,
        )  # fmt: skip
        prev, c_prev = now, c_ptrs[k]
        if ends:
            _record_ends(finals, ends, t, (h_out[t + 1], cs[k], r_out[t + 1], *views[k]))
    if finals is None:  # fresh tensors: ctx must not hold outputs (a reference cycle), nor buffers share them
        finals = [y.clone() for y in (h_out[T], cs[(T - 1) % n_buf], r_out[T], *views[(T - 1) % n_buf])]
    lease = Lease(_FORWARD_POOL, key, workspace, nbytes)  # back to the pool when ctx (or this frame) lets go
    if keep:
        ctx.lease, ctx.ends, ctx.dims, ctx.init, ctx.c0 = lease, ends, dims, init, c0
        ctx.save_for_backward(HR, w_hr, w_xi)
    ctx.set_materialize_grads(False)
    return (HR, *finals)


def _backward_native(ctx: Any, g_HR: Tensor | None, g_finals: tuple[Tensor | None, ...]) -> tuple[Tensor | None, ...]:
    """:meth:`DNCSequence.backward` for :func:`_forward_native`: the VJPs of both C steps in C."""
    HR, w_hr, w_xi = ctx.saved_tensors
    fns, (R, W), ends, init = ctx.native, ctx.dims, ctx.ends, ctx.init
    xi_ptrs, state_ptrs, saved_ptrs, phi_ptrs, _, act_ptrs, c_ptrs, tc_ptrs = ctx.lease.workspace[-5]
    T, B, row = HR.shape[0] - 1, HR.shape[1], HR.shape[2]
    H, N, Z = row - R * W, init[0].shape[1], w_xi.shape[0]
    g_h_final, g_c_final, g_r_final, *g_state_finals = g_finals
    G_gates = HR.new_empty(T, B, w_hr.shape[0])  # ∂L/∂a_t, the pre-activations (returned: not pooled)
    key = ("native", T, B, H, R, W, Z, HR.dtype, HR.device)

    def make() -> tuple[Any, ...]:
        G_xi = HR.new_empty(T, B, Z)  # ∂L/∂ξ_t
        G_HR = HR.new_empty(T + 1, B, row)  # row t: ∂L/∂HR[t] = ∂L/∂[h_{t−1}; r_{t−1}]
        work = HR.new_empty(fns["dnc_work_size"](N, W, R))
        h_part, r_part = G_HR[:, :, :H].unbind(0), G_HR[:, :, H:].unflatten(-1, (R, W)).unbind(0)
        views = G_xi.unbind(0), G_HR.unbind(0), h_part, r_part
        return G_xi, G_HR, work, _pointers(G_xi), views, storage_bytes(G_xi, G_HR, work)

    workspace = _BACKWARD_POOL.take(key, make)
    G_xi, G_HR, work, gxi_ptrs, (G_xis, G_HRs, g_h_views, g_r_views), nbytes = workspace
    if g_HR is None:  # row t: ∂L/∂HR[t] from the outputs; step t's controller adds its part below
        G_HR.zero_()
    else:
        G_HR.copy_(g_HR)
    gate_grads = G_gates.unbind(0)
    # carried gradients of the state after step t (c first), updated in place by the C backward
    g_c = torch.zeros_like(ctx.c0)
    carry = [torch.zeros_like(x) for x in init]
    if not ends:  # no padding: the final state is the state after step T − 1
        for buf, g in zip((g_c, *carry), (g_c_final, *g_state_finals), strict=True):
            if g is not None:
                buf.copy_(g)
        if g_h_final is not None:
            g_h_views[T].add_(g_h_final)
        if g_r_final is not None:
            g_r_views[T].add_(g_r_final)
    carry_ptrs = [x.data_ptr() for x in carry]
    init_ptrs, g_c_ptr, c0_ptr = [x.data_ptr() for x in init], g_c.data_ptr(), ctx.c0.data_ptr()
    el = G_HR.element_size()
    g_hr_ptr, gates_ptr, gates_step = G_HR.data_ptr(), G_gates.data_ptr(), B * 4 * H * el
    backward, lstm = fns["dnc_access_backward"], fns["dnc_lstm_backward"]
    for t in range(T - 1, -1, -1):
        if t in ends:
            idx = ends[t]
            for view, g_final in ((g_h_views[t + 1], g_h_final), (g_r_views[t + 1], g_r_final)):
                if g_final is not None:
                    view.index_add_(0, idx, g_final.index_select(0, idx))
            for buf, g in zip((g_c, *carry), (g_c_final, *g_state_finals), strict=True):
                if g is not None:
                    buf.index_add_(0, idx, g.index_select(0, idx))
        prev = init_ptrs if t == 0 else state_ptrs[t - 1]
        M_t, _, L_t, _, wr_t, ww_t = state_ptrs[t]
        g_h_ptr = g_hr_ptr + (t + 1) * B * row * el  # ∂L/∂h_t and ∂L/∂r_t in G_HR[t + 1]
        backward(
            B, N, W, R, xi_ptrs[t], Z, *prev, M_t, L_t, wr_t, ww_t, saved_ptrs[t], phi_ptrs[t],
            g_h_ptr + H * el, row, *carry_ptrs, gxi_ptrs[t], Z, work.data_ptr(),
        )  # fmt: skip
        g_h_views[t + 1].addmm_(G_xis[t], w_xi)  # h_t feeds ξ_t and HR
        c_prev = c0_ptr if t == 0 else c_ptrs[t - 1]
        lstm(B, H, act_ptrs[t], tc_ptrs[t], c_prev, g_h_ptr, row, g_c_ptr, gates_ptr + t * gates_step)
        G_HRs[t].addmm_(gate_grads[t], w_hr)  # ∂L/∂[h_{t−1}; r_{t−1}] through step t's controller
    g_w_hr, g_w_xi, g_b_xi, g_h0, g_r0 = _controller_grads(G_gates, G_xi, HR, G_HRs[0], ctx.dims)
    _BACKWARD_POOL.give(key, workspace, nbytes)
    return (G_gates, g_w_hr, g_w_xi, g_b_xi, g_h0, g_c, g_r0, *carry, None, None, None)
