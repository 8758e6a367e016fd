"""A fused memory step for the paper's DNC: all of ``access_step`` as one autograd node, backward by hand.

The composed step (``access.access_step``) records about a hundred small operations per time step in the
autograd graph; on a CPU their per-operation overhead, not arithmetic, sets the speed. This module computes
the same function from the raw interface vector ξ_t to the new state in about fifty tensor operations and
its vector-Jacobian product in about a hundred, with one autograd node per step, and saves no N × N
temporaries besides the link matrices themselves. It covers the paper's configuration (one write head,
dense link, no Csordás & Schmidhuber options); the model falls back to the composed step otherwise.

:func:`access_forward` writes every result with ``out=`` into buffers it is handed as :class:`StepViews`
(made by :func:`step_views` for one step, or for all steps of a sequence by ``sequence.DNCSequence``,
which keeps them for later calls), and :func:`access_backward` writes ∂L/∂ξ_t into :class:`GradViews`.
Making a view or allocating a small tensor costs about as much as a small kernel, so the step functions
do neither where they can.

The forward pass follows the equations of ``addressing`` in the paper's order; the backward pass applies
the chain rule to them in reverse (each block below names what it differentiates). Tests check values
against ``access_step`` and gradients with ``torch.autograd.gradcheck`` in float64. Double backward is not
supported (first derivatives, Jacobians and slow-point searches are).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from mnemonet.kernels.tricks import SIGMOID_BACKWARD as _SIGMOID_BACKWARD
from mnemonet.kernels.tricks import const as _const
from mnemonet.kernels.tricks import per_step as _per_step

EPSILON = 1e-6  # ε of the content weights and norms: equal to ``models.dnc.addressing.EPSILON`` (tested)


def _is_owned(grad: Tensor) -> bool:
    """Whether ``grad`` is a gradient this module's backward created for it (and so may update in place).

    A step tags the memory and link gradients it returns only when that input came straight from
    another fused step, so the tagged tensor reaches that step's backward alone (possibly with other
    gradients summed into it by autograd, which then owns the sum). Accumulating into it in place spares
    an allocation and a copy of `[B, N, W]` and `[B, N, N]` per step. Gradients from anywhere else (a
    user's ``grad_outputs``, a hook, a node that hands one tensor to several inputs) are never modified.
    """
    return getattr(grad, "_mnemonet_owned", False)


def _writable(grad: Tensor | None, like: Tensor, owned: bool) -> Tensor:
    """A tensor holding ``grad`` (zeros if None) that may be updated in place."""
    if grad is None:
        return torch.zeros_like(like)
    return grad if owned else grad.clone()


def _softmax_backward(grad: Tensor, out: Tensor) -> Tensor:
    """VJP of softmax over the last axis: out ⊙ (grad − Σ grad ⊙ out)."""
    return torch._softmax_backward_data(grad, out, -1, out.dtype)


def inverse_norms(x: Tensor, eps: Tensor, dim: int = -1, out: Tensor | None = None) -> Tensor:
    """1 / sqrt(|x|² + ε) over ``dim``, kept as a size-1 axis: the cosine-similarity denominators.

    For memory rows pass M^T `[B, W, N]` and ``dim=1`` (a `[B, 1, N]` row); for keys `[B, K, W]`, ``dim=-1``.
    ``out``: where to write the result.
    """
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True)
    return torch.addcmul(eps, norm, norm, out=out).rsqrt_()


class StepViews(NamedTuple):
    """One step's inputs from ξ_t and its output buffers, as views made once per sequence.

    A view costs about as much as a small kernel, so the sequence node makes every per-step view in one
    ``unbind`` per buffer (:func:`step_views`) and the step functions index nothing themselves. Shapes
    for batch B, N slots of width W and R read heads; ``sg``, ``q``, ``memory`` and ``link`` are written by
    :func:`access_forward`.
    """

    keys: Tensor  # read keys then the write key, (B, R + 1, W), view of ξ
    v_row: Tensor  # write vector, (B, 1, W), view of ξ
    plus_col: Tensor  # strengths before oneplus, (B, R + 1, 1), view of ξ
    sig_raw: Tensor  # erase | free | allocation gate | write gate before σ, (B, W + R + 2), view of ξ
    soft_raw: Tensor  # read modes before softmax, (B, R, 3, 1), view of ξ
    sg: Tensor  # σ(sig_raw), (B, W + R + 2)
    e_row: Tensor  # erase vector, (B, 1, W), view of sg
    f_col: Tensor  # free gates, (B, R, 1), view of sg
    ga: Tensor  # allocation gate, (B, 1, 1), view of sg
    gw: Tensor  # write gate, (B, 1, 1), view of sg
    q: Tensor  # keys scaled by strength / |key|, (B, R + 1, W)
    q_r: Tensor  # (B, R, W), view of q
    q_w: Tensor  # (B, 1, W), view of q
    memory: Tensor  # M_t, (B, N, W)
    memory_t: Tensor  # M_t^T, (B, W, N), view
    link: Tensor  # L_t, (B, N, N)
    link_t: Tensor  # L_t^T, view
    link_diag: Tensor  # the diagonal of L_t, (B, N), view
    # the step's other results and intermediates, named as in access_forward (vectors over slots are (B, 1, N))
    pi: Tensor  # (B, R, 3, 1)
    k_inv: Tensor  # (B, R + 1, 1)
    scale: Tensor  # (B, R + 1, 1)
    terms: Tensor  # (B, R, N)
    psi: Tensor
    u_pre: Tensor
    u_new: Tensor
    z_w: Tensor
    c_w: Tensor
    key: Tensor
    su: Tensor
    phi: Tensor  # int64
    excl: Tensor
    sa: Tensor
    a: Tensor
    mix: Tensor
    ww: Tensor
    inner: Tensor  # (B, N, W)
    keep_p: Tensor  # (B, 1, 1)
    p_new: Tensor
    mn_inv: Tensor
    z_r: Tensor  # (B, R, N)
    c_r: Tensor  # (B, R, N)
    S: Tensor  # (B, R, 3, N)
    wr: Tensor  # (B, R, N)


def _result_shapes(N: int, R: int, W: int) -> dict[str, tuple[int, ...]]:
    """Per-step shapes (after B) of the :class:`StepViews` result fields, in field order."""
    vec = (1, N)
    shapes = {"pi": (R, 3, 1), "k_inv": (R + 1, 1), "scale": (R + 1, 1), "terms": (R, N)}
    shapes |= {k: vec for k in ("psi", "u_pre", "u_new", "z_w", "c_w", "key", "su", "phi", "excl", "sa", "a")}
    shapes |= {"mix": vec, "ww": vec, "inner": (N, W), "keep_p": (1, 1), "p_new": vec, "mn_inv": vec}
    return shapes | {"z_r": (R, N), "c_r": (R, N), "S": (R, 3, N), "wr": (R, N)}


def _split_xi(xi: Tensor, R: int, W: int) -> tuple[Tensor, ...]:
    """ξ (or its gradient) `[..., Z]` by part, as views.

    Returns:
        keys `[..., R+1, W]`, v `[..., 1, W]`, β̂ `[..., R+1, 1]`, gates `[..., W+R+2]`, π̂ `[..., R, 3, 1]`.
    """
    keys, v, plus, sig, soft = torch.split(xi, [(R + 1) * W, W, R + 1, W + R + 2, 3 * R], -1)
    return keys.unflatten(-1, (R + 1, W)), v.unsqueeze(-2), plus.unsqueeze(-1), sig, soft.unflatten(-1, (R, 3, 1))


def _split_gates(sig: Tensor, R: int, W: int) -> tuple[Tensor, ...]:
    """The gate part `[..., W+R+2]` -> e `[..., 1, W]`, f `[..., R, 1]`, g^a `[..., 1, 1]`, g^w `[..., 1, 1]`."""
    e, f, ga, gw = sig.split([W, R, 1, 1], -1)
    return e.unsqueeze(-2), f.unsqueeze(-1), ga.unsqueeze(-1), gw.unsqueeze(-1)


def step_views(xi: Tensor, memory_size: int, num_reads: int, word_size: int) -> list[StepViews]:
    """Views of ξ (layout of ``interface.split_interface``, Hw = 1, no options) and of new output buffers.

    Args:
        xi: ξ for T steps `[T, B, Z]`, or for one step `[B, Z]`. It may be written after this call.

    Returns:
        One :class:`StepViews` per step (a list of one for `[B, Z]`, whose buffers are then whole tensors).
    """
    N, R, W = memory_size, num_reads, word_size
    lead = xi.shape[:-1]
    sg = xi.new_empty(*lead, W + R + 2)
    q = xi.new_empty(*lead, R + 1, W)
    memory = xi.new_empty(*lead, N, W)
    link = xi.new_empty(*lead, N, N)
    results = [
        xi.new_empty(*lead, *shape, dtype=torch.int64 if name == "phi" else None)
        for name, shape in _result_shapes(N, R, W).items()
    ]
    parts = (
        *_split_xi(xi, R, W), sg, *_split_gates(sg, R, W), q, q[..., :R, :], q[..., R:, :],
        memory, memory.mT, link, link.mT, link.diagonal(dim1=-2, dim2=-1), *results,
    )  # fmt: skip
    return _per_step(StepViews, parts, xi.dim() == 3)


class GradViews(NamedTuple):
    """Views of one step's ∂L/∂ξ_t `[B, Z]` by part, written in place by :func:`access_backward` (shapes as in
    :class:`StepViews`)."""

    whole: Tensor
    keys: Tensor
    v_row: Tensor
    plus_col: Tensor
    sig: Tensor
    soft: Tensor
    e_row: Tensor
    f_col: Tensor
    ga: Tensor
    gw: Tensor


def grad_views(g_xi: Tensor, num_reads: int, word_size: int) -> list[GradViews]:
    """:class:`GradViews` of a gradient buffer `[T, B, Z]` (one per step), or of `[B, Z]` (a list of one)."""
    keys, v, plus, sig, soft = _split_xi(g_xi, num_reads, word_size)
    parts = (g_xi, keys, v, plus, sig, soft, *_split_gates(sig, num_reads, word_size))
    return _per_step(GradViews, parts, g_xi.dim() == 3)


def access_forward(
    x: StepViews,
    memory: Tensor,
    memory_t: Tensor,
    usage: Tensor,
    L: Tensor,
    p: Tensor,
    prev_read: Tensor,
    ww_prev: Tensor,
    m_inv: Tensor | None = None,
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """One memory step for one write head, without autograd: the forward half of :class:`FusedAccessStep`.

    Args:
        x: this step's views (:func:`step_views`); M_t and L_t are written into ``x.memory`` and ``x.link``.
        memory: M_{t−1} `[B, N, W]`, and ``memory_t`` its transpose `[B, W, N]`.
        usage: u_{t−1} `[B, 1, N]`.
        L: L_{t−1} `[B, N, N]`.
        p: p_{t−1} `[B, 1, N]`.
        prev_read: w^r_{t−1} `[B, R, N]`.
        ww_prev: w^w_{t−1} `[B, 1, N]`.
        m_inv: ``inverse_norms(memory_t, eps, 1)`` `[B, 1, N]` if the caller has it (the previous step's), else None.

    Returns:
        ((r_t `[B, R, W]`, u_t, p_t, w^r_t, w^w_t, a_t, 1/|M_t| (each `[B, 1, N]` but w^r_t `[B, R, N]`)),
        the tensors :func:`access_backward` needs).
    """
    one, eps = _const(1.0, memory), _const(EPSILON, memory)

    # ξ_t -> controls (interface.split_interface with Hw = 1): sigmoid gates, softmax read modes π
    torch.sigmoid(x.sig_raw, out=x.sg)  # e | f | g^a | g^w, read through x's views
    pi = torch.softmax(x.soft_raw, -2, out=x.pi)  # π: backward, content, forward, (B, R, 3, 1)

    # keys scaled once: q = β k / sqrt(|k|² + ε), β = oneplus(β̂), so content scores are q·M[i] / sqrt(|M[i]|² + ε)
    k_inv = inverse_norms(x.keys, eps, out=x.k_inv)  # (B, R+1, 1)
    scale = F.softplus(x.plus_col, 1, 20, out=x.scale).add_(one).mul_(k_inv)  # β k_inv: β^r then β^w
    torch.mul(x.keys, scale, out=x.q)  # q^r | q^w, read through x's views

    # ψ_t = Π_i (1 − f^i w^{r,i}_{t−1}); u_t = (u + w^w − u ⊙ w^w) ⊙ ψ_t
    terms = torch.addcmul(one, x.f_col, prev_read, value=-1.0, out=x.terms)  # (B, R, N)
    psi = torch.prod(terms, 1, keepdim=True, out=x.psi)  # (B, 1, N)
    u_pre = torch.lerp(usage, one, ww_prev, out=x.u_pre)  # u + w^w (1 − u)
    u_new = torch.mul(u_pre, psi, out=x.u_new)

    # c^w_t = C(M_{t−1}, k^w, β^w)
    if m_inv is None:
        m_inv = inverse_norms(memory_t, eps, 1)  # (B, 1, N)
    z_w = torch.bmm(x.q_w, memory_t, out=x.z_w).mul_(m_inv)  # cosine × β^w, (B, 1, N)
    c_w = torch.softmax(z_w, -1, out=x.c_w)

    # a_t: allocation from usage sorted ascending (ε + (1 − ε) u), exclusive cumulative product
    key = torch.add(eps, u_new, alpha=1.0 - EPSILON, out=x.key)
    su, phi = torch.sort(key, dim=-1, stable=True, out=(x.su, x.phi))  # ties: slot order
    excl = torch.cumprod(su, -1, out=x.excl).div_(su)  # Π_{i<j} su_i, (B, 1, N)
    sa = torch.addcmul(excl, su, excl, value=-1.0, out=x.sa)  # (1 − su_j) Π_{i<j} su_i
    a = torch.scatter(sa, -1, phi, sa, out=x.a)  # back to slot order (φ is a permutation: every entry is written)

    # w^w_t = g^w [g^a a + (1 − g^a) c^w]
    mix = torch.lerp(c_w, a, x.ga, out=x.mix)
    ww = torch.mul(mix, x.gw, out=x.ww)  # (B, 1, N)
    w_col = ww.mT  # (B, N, 1)

    # M_t = M_{t−1} ⊙ (E − w^w e^T) + w^w v^T = M_{t−1} + w^w ⊙ (v^T − e^T ⊙ M_{t−1}) (two kernels)
    inner = torch.addcmul(x.v_row, x.e_row, memory, value=-1.0, out=x.inner)  # (B, N, W)
    mem_new = torch.addcmul(memory, w_col, inner, out=x.memory)

    # L_t = (1 − w_i − w_j) L_{t−1} + w_i p_j with a zero diagonal; p_t = (1 − Σ w) p + w
    L_new = torch.addcmul(L, w_col, L, value=-1.0, out=x.link)  # (1 − w_i) L; then − w_j L + w_i p_j
    L_new.addcmul_(L, ww, value=-1.0).addcmul_(w_col, p)
    x.link_diag.zero_()
    keep_p = torch.sum(ww, -1, keepdim=True, out=x.keep_p).neg_().add_(one)  # (B, 1, 1)
    p_new = torch.addcmul(ww, keep_p, p, out=x.p_new)

    # c^r_t = C(M_t, k^r, β^r); f_t = L_t w^r_{t−1}, b_t = L_t^T w^r_{t−1}
    mn_inv = inverse_norms(x.memory_t, eps, 1, out=x.mn_inv)  # (B, 1, N)
    z_r = torch.bmm(x.q_r, x.memory_t, out=x.z_r).mul_(mn_inv)  # cosine × β^r, (B, R, N)
    c_r = torch.softmax(z_r, -1, out=x.c_r)
    fwd = torch.bmm(prev_read, x.link_t)  # (B, R, N)
    bwd = torch.bmm(prev_read, L_new)  # (B, R, N)

    # w^r_t = π[0] b + π[1] c + π[2] f; r_t = M_t^T w^r_t
    S = torch.stack([bwd, c_r, fwd], 2, out=x.S)  # (B, R, 3, N)
    wr = torch.sum(pi * S, 2, out=x.wr)  # (B, R, N); elementwise: a batched 1×3 @ 3×N matmul costs more
    r = torch.bmm(wr, mem_new)  # (B, R, W)

    saved = (x, memory, usage, L, p, prev_read, ww_prev, m_inv, w_col)
    return (r, u_new, p_new, wr, ww, a, mn_inv), saved


def access_backward(
    saved: tuple[Any, ...],
    g_r: Tensor | None,
    g_Mn: Tensor | None,
    g_un: Tensor | None,
    g_Ln: Tensor | None,
    g_pn: Tensor | None,
    g_wr: Tensor | None,
    g_ww: Tensor | None,
    gx: GradViews,
    owned_M: bool = False,
    owned_L: bool = False,
) -> tuple[Tensor, ...]:
    """The vector-Jacobian product of :func:`access_forward`: gradients of (r_t, M_t, u_t, L_t, p_t, w^r_t, w^w_t) in
    (shapes as there; None for zero), gradients of (M_{t−1}, u_{t−1}, L_{t−1}, p_{t−1}, w^r_{t−1}, w^w_{t−1}) out,
    and the gradient of ξ_t written into ``gx``. ``owned_M`` / ``owned_L``: ``g_Mn`` / ``g_Ln`` may be updated in
    place (see :func:`_is_owned`).
    """
    x, M, u, L, p, wr_prev, ww_prev, m_inv, w_col = saved
    k_inv, scale, pi, terms, psi, u_pre, z_w, c_w = x.k_inv, x.scale, x.pi, x.terms, x.psi, x.u_pre, x.z_w, x.c_w
    su, phi, excl, sa, a, mix, ww, inner = x.su, x.phi, x.excl, x.sa, x.a, x.mix, x.ww, x.inner
    keep_p, mn_inv, z_r, c_r, S, wr = x.keep_p, x.mn_inv, x.z_r, x.c_r, x.S, x.wr
    Mn, Mn_t, Ln = x.memory, x.memory_t, x.link
    B, R, N = wr.shape
    g_Mn = _writable(g_Mn, Mn, owned_M)  # accumulated in place below
    g_wr = torch.zeros_like(wr) if g_wr is None else g_wr
    g_un = torch.zeros_like(u) if g_un is None else g_un

    # r = w^r M_t
    if g_r is not None:
        g_wr = torch.baddbmm(g_wr, g_r, Mn_t)
        g_Mn.baddbmm_(wr.mT, g_r)
    # w^r = π S
    g_wr_3 = g_wr.unsqueeze(2)  # (B, R, 1, N)
    g_pi = (S * g_wr_3).sum(-1, keepdim=True)  # (B, R, 3, 1)
    g_bwd, g_cr, g_fwd = (pi * g_wr_3).unbind(2)
    # f = w^r_{t−1} L_t^T, b = w^r_{t−1} L_t: dLoss/dL_t = g_f^T w^r_{t−1} + (w^r_{t−1})^T g_b (+ from t+1)
    lhs = torch.cat([g_fwd, wr_prev], 1).mT  # (B, N, 2R)
    rhs = torch.cat([wr_prev, g_bwd], 1)  # (B, 2R, N)
    if g_Ln is None:
        G = torch.bmm(lhs, rhs)  # (B, N, N)
    elif owned_L:
        G = g_Ln.baddbmm_(lhs, rhs)
    else:
        G = torch.baddbmm(g_Ln, lhs, rhs)
    g_wr_prev = torch.baddbmm(torch.bmm(g_fwd, Ln), g_bwd, x.link_t)
    # c^r = softmax(dot_r / |M_t|)
    g_z = _softmax_backward(g_cr, c_r)
    g_dot = g_z * mn_inv
    g_qr = torch.bmm(g_dot, Mn)  # (B, R, W)
    g_Mn.baddbmm_(g_dot.mT, x.q_r)
    g_minv = (g_dot * z_r).sum(1, keepdim=True).mul_(mn_inv)  # (B, 1, N): d(1/|M|)/dM = −M / |M|³
    g_Mn.addcmul_(g_minv.mT, Mn, value=-1.0)
    # p_t = (1 − Σ w) p + w
    G.diagonal(dim1=1, dim2=2).zero_()
    g_p = torch.bmm(ww, G)  # link: Σ_i G_ij w_i, (B, 1, N)
    GL = G * L  # link: Σ_j G_ij p_j − Σ_j G_ij L_ij − Σ_j G_ji L_ji, (B, 1, N)
    g_ww_t = torch.baddbmm(GL.sum(-2, keepdim=True), p, G.mT, beta=-1.0).sub_(GL.sum(-1, keepdim=True).mT)
    if g_ww is not None:
        g_ww_t = g_ww_t.add_(g_ww)
    if g_pn is not None:
        g_p = torch.addcmul(g_p, g_pn, keep_p)
        g_ww_t = g_ww_t.add_(g_pn).sub_((g_pn * p).sum(-1, keepdim=True))
    # L_t = mask ⊙ ((1 − w_i − w_j) L + w_i p_j)
    g_L = torch.addcmul(G, G, w_col, value=-1.0, out=GL).addcmul_(G, ww, value=-1.0)  # reuses GL
    # M_t = M + w ⊙ (v^T − e^T ⊙ M): g_w = Σ_k g ⊙ (v − e ⊙ M), g_v = Σ_i w g, g_e = −Σ_i w g ⊙ M
    g_ww_t = g_ww_t.add_((inner * g_Mn).sum(-1, keepdim=True).mT)
    gw_ = g_Mn * w_col  # (B, N, W)
    g_M = torch.addcmul(g_Mn, gw_, x.e_row, value=-1.0)
    torch.sum(gw_, 1, keepdim=True, out=gx.v_row)
    torch.sum(gw_.mul_(M), 1, keepdim=True, out=gx.e_row).neg_()
    # w^w = g^w lerp(c^w, a, g^a)
    torch.sum(g_ww_t * mix, -1, keepdim=True, out=gx.gw)
    g_mix = g_ww_t * x.gw
    g_a = g_mix * x.ga
    g_cw = g_mix - g_a
    torch.sum(g_mix * (a - c_w), -1, keepdim=True, out=gx.ga)
    # a = scatter((1 − su_j) Π_{i<j} su_i)
    g_sa = g_a.gather(-1, phi)
    csum = (g_sa * sa).cumsum(-1)  # through Π_{i<j} su_i: Σ_{j>i} g_j sa_j / su_i
    g_su = torch.addcmul((csum[..., -1:] - csum).div_(su), g_sa, excl, value=-1.0)
    g_un = torch.add(g_un, g_su.scatter(-1, phi, g_su), alpha=1.0 - EPSILON)
    # c^w = softmax(dot_w / |M|)
    g_zw = _softmax_backward(g_cw, c_w)
    g_dotw = g_zw * m_inv  # (B, 1, N)
    g_qw = torch.bmm(g_dotw, M)  # (B, 1, W)
    g_M.addcmul_(g_dotw.mT, x.q_w)  # outer product g_dot^w q^w: elementwise beats a K = 1 bmm
    g_M.addcmul_((g_dotw * z_w).mul_(m_inv).mT, M, value=-1.0)
    # u_t = u_pre ⊙ ψ, u_pre = u + w^w_{t−1} (1 − u)
    g_psi = g_un * u_pre
    g_upre = g_un * psi
    g_u = torch.addcmul(g_upre, g_upre, ww_prev, value=-1.0)  # ⊙ (1 − w^w_{t−1})
    g_ww_prev = torch.addcmul(g_upre, g_upre, u, value=-1.0)  # ⊙ (1 − u)
    # ψ = Π_i (1 − f_i w^r_i): ∂ψ/∂term_i = Π_{k≠i} term_k (no division, safe at zeros)
    twice = torch.cat([terms, terms], 1)  # (B, 2R, N): rows i + 1 … i + R − 1 are the R − 1 other terms
    others = twice.as_strided((B, R, R - 1, N), (2 * R * N, N, N, 1), N).prod(2)  # (B, R, N)
    g_terms = others.mul_(g_psi)
    torch.sum(g_terms * wr_prev, -1, keepdim=True, out=gx.f_col).neg_()
    g_wr_prev = torch.addcmul(g_wr_prev, g_terms, x.f_col, value=-1.0)
    # q = β k / sqrt(|k|² + ε): g_k = s g_q − s k_inv² (k·g_q) k, g_β = k_inv (k·g_q)
    g_q = torch.cat([g_qr, g_qw], 1)  # (B, R+1, W)
    kk = (x.keys * g_q).sum(-1, keepdim=True).mul_(k_inv)  # k_inv (k·g_q), (B, R+1, 1)
    torch.mul(torch.addcmul(g_q, x.keys, kk * k_inv, value=-1.0), scale, out=gx.keys)
    # nonlinearities back onto ξ
    torch.mul(kk, torch.sigmoid(x.plus_col), out=gx.plus_col)  # oneplus' = σ
    _SIGMOID_BACKWARD(gx.sig, x.sg, grad_input=gx.sig)
    gx.soft.copy_(torch._softmax_backward_data(g_pi, pi, -2, pi.dtype))  # its out= form ignores strides
    return g_M, g_u, g_L, g_p, g_wr_prev, g_ww_prev


class FusedAccessStep(torch.autograd.Function):
    """``(ξ, M, u, L, p, w^r_{t−1}, w^w_{t−1}) -> (r, M', u', L', p', w^r, w^w, a)`` for one write head.

    Shapes: ξ `[B, Z]` (layout of ``interface.split_interface`` with Hw = 1 and no options), M `[B, N, W]`,
    u `[B, N]`, L `[B, 1, N, N]`, p `[B, 1, N]`, w^r `[B, R, N]`, w^w `[B, 1, N]`; outputs alike, r `[B, R, W]`
    and the allocation weighting a `[B, 1, N]` (not differentiable; for traces).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        xi: Tensor,
        memory: Tensor,
        usage: Tensor,
        link: Tensor,
        prec: Tensor,
        prev_read: Tensor,
        prev_write: Tensor,
        num_reads: int,
        word_size: int,
    ) -> tuple[Tensor, ...]:
        x = step_views(xi, memory.shape[1], num_reads, word_size)[0]
        (r, u, p, wr, ww, a, _), saved = access_forward(
            x, memory, memory.mT, usage.unsqueeze(1), link[:, 0], prec, prev_read, prev_write
        )
        # the StepViews, then the rest; views of the outputs M_t and L_t are made again in backward
        ctx.save_for_backward(*x._replace(memory_t=None, link_t=None, link_diag=None), *saved[1:])
        ctx.dims, ctx.xi_size = (num_reads, word_size), xi.shape[1]
        fused_node = FusedAccessStep._backward_cls  # type: ignore[attr-defined]
        ctx.tag = (type(memory.grad_fn) is fused_node, type(link.grad_fn) is fused_node)  # see _is_owned
        ctx.mark_non_differentiable(a)
        ctx.set_materialize_grads(False)
        return r, x.memory, u.squeeze(1), x.link.unsqueeze(1), p, wr, ww, a

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: Any,
        g_r: Tensor | None,
        g_Mn: Tensor | None,
        g_un: Tensor | None,
        g_Ln: Tensor | None,
        g_pn: Tensor | None,
        g_wr: Tensor | None,
        g_ww: Tensor | None,
        _g_a: Tensor | None,
    ) -> tuple[Tensor | None, ...]:
        tensors = ctx.saved_tensors
        n = len(StepViews._fields)
        x = StepViews(*tensors[:n])
        x = x._replace(memory_t=x.memory.mT, link_t=x.link.mT)
        gx = grad_views(x.sig_raw.new_empty(x.sig_raw.shape[0], ctx.xi_size), *ctx.dims)[0]
        g_M, g_u, g_L, g_p, g_wr_prev, g_ww_prev = access_backward(
            (x, *tensors[n:]), g_r, g_Mn, None if g_un is None else g_un.unsqueeze(1),
            None if g_Ln is None else g_Ln.squeeze(1), g_pn, g_wr, g_ww, gx,
            owned_M=g_Mn is not None and _is_owned(g_Mn), owned_L=g_Ln is not None and _is_owned(g_Ln),
        )  # fmt: skip
        g_L = g_L.unsqueeze(1)
        if ctx.tag[0]:
            g_M._mnemonet_owned = True  # type: ignore[attr-defined]  # see _is_owned
        if ctx.tag[1]:
            g_L._mnemonet_owned = True  # type: ignore[attr-defined]
        return gx.whole, g_M, g_u.squeeze(1), g_L, g_p, g_wr_prev, g_ww_prev, None, None
