"""The DNC's memory addressing, one pure parameter-free function per equation of Graves et al. (Nature 2016).

Every function here maps tensors to tensors with batch first and holds no state or parameters; the
docstrings name the equation of the paper's Methods section ("Memory addressing") that each one computes.
Head axes follow the batch axis: ``R`` read heads, ``Hw`` write heads (the paper has ``Hw = 1``; several
write heads follow deepmind/dnc). Where a function takes an option of Csordás & Schmidhuber (ICLR 2019),
the option is off by default and the function then computes the paper's equation exactly.

Symbols: ``N`` memory slots (rows), ``W`` word size, ``M`` memory `[B, N, W]`, ``u`` usage `[B, N]`,
``L`` temporal link matrix `[B, Hw, N, N]`, ``p`` precedence `[B, Hw, N]`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

EPSILON = 1e-6
"""Numerical floor used inside norms, logarithms and the usage clamp of :func:`allocation`."""


def oneplus(x: Tensor) -> Tensor:
    """oneplus(x) = 1 + log(1 + e^x): the paper's map onto [1, ∞) for key strengths."""
    return 1.0 + F.softplus(x)


def cosine_similarity(
    memory: Tensor, keys: Tensor, masks: Tensor | None = None, eps: float = EPSILON, outer_eps: bool = False
) -> Tensor:
    """D(k, M[i]) = k·M[i] / (|k| |M[i]|) for every head and slot; zero rows and zero keys give 0.

    The norms are |x|_ε = sqrt(|x|² + ε). With ``outer_eps`` (deepmind/dnc's ``CosineWeights``) the quotient
    also gets ε added to its denominator, D = k·M[i] / (|k|_ε |M[i]|_ε + ε); the paper has no ε at all.

    With ``masks`` (Csordás & Schmidhuber 2019, "masked content-based addressing"), both the key and
    every memory row are multiplied elementwise by the head's mask m before the comparison:
    D(k ⊙ m, M[i] ⊙ m).

    Args:
        memory: M, `[B, N, W]`.
        keys: k, `[B, H, W]` one key per head.
        masks: m, `[B, H, W]` values in [0, 1], or None.
        eps: added under each square root, so a zero norm gives similarity 0 and finite gradients.
        outer_eps: also add ``eps`` to the product of the norms (deepmind/dnc).

    Returns:
        `[B, H, N]` similarities in [-1, 1].
    """
    if masks is None:
        dot = torch.matmul(keys, memory.transpose(1, 2))  # (B, H, N)
        key_norm = torch.sqrt(keys.square().sum(-1, keepdim=True) + eps)  # (B, H, 1)
        mem_norm = torch.sqrt(memory.square().sum(-1) + eps).unsqueeze(1)  # (B, 1, N)
    else:
        m2 = masks.square()
        dot = torch.matmul(keys * m2, memory.transpose(1, 2))  # (B, H, N): Σ_w k_w m_w² M_iw
        key_norm = torch.sqrt((keys * masks).square().sum(-1, keepdim=True) + eps)  # (B, H, 1)
        mem_norm = torch.sqrt(torch.matmul(m2, memory.square().transpose(1, 2)) + eps)  # (B, H, N)
    norm = key_norm * mem_norm
    return dot / (norm + eps if outer_eps else norm)


def content_weights(
    memory: Tensor,
    keys: Tensor,
    strengths: Tensor,
    masks: Tensor | None = None,
    eps: float = EPSILON,
    outer_eps: bool = False,
) -> Tensor:
    """Content-based addressing C(M, k, β)[i] = exp(β D(k, M[i])) / Σ_j exp(β D(k, M[j])) (Methods, eq. of C).

    Args:
        memory: M, `[B, N, W]`.
        keys: k, `[B, H, W]`.
        strengths: β ≥ 1, `[B, H]`.
        masks: optional key/content masks `[B, H, W]` (see :func:`cosine_similarity`).
        outer_eps: deepmind/dnc's ε on the product of the norms (see :func:`cosine_similarity`).

    Returns:
        `[B, H, N]` weightings, each row a distribution over the N slots.
    """
    sim = cosine_similarity(memory, keys, masks, eps, outer_eps)
    return torch.softmax(sim * strengths.unsqueeze(-1), dim=-1)


def retention(free_gates: Tensor, prev_read_weights: Tensor) -> Tensor:
    """Memory retention vector ψ_t = Π_{i=1..R} (1 − f_t^i w^{r,i}_{t−1}).

    Args:
        free_gates: f_t, `[B, R]` in [0, 1].
        prev_read_weights: w^r_{t−1}, `[B, R, N]`.

    Returns:
        ψ_t, `[B, N]`: how much of each slot is *not* freed by the reads of the previous step.
    """
    return torch.prod(1.0 - free_gates.unsqueeze(-1) * prev_read_weights, dim=1)


def usage(prev_usage: Tensor, prev_write_weights: Tensor, psi: Tensor, write_gradient: bool = True) -> Tensor:
    """Usage vector u_t = (u_{t−1} + w^w_{t−1} − u_{t−1} ⊙ w^w_{t−1}) ⊙ ψ_t.

    With several write heads their joint write weighting is 1 − Π_j (1 − w^{w,j}) (deepmind/dnc).

    Args:
        prev_usage: u_{t−1}, `[B, N]`.
        prev_write_weights: w^w_{t−1}, `[B, Hw, N]`.
        psi: ψ_t from :func:`retention`, `[B, N]`.
        write_gradient: let the gradient flow from u_t into w^w_{t−1} (the paper's equation is silent; True).
            False stops it there, as deepmind/dnc's ``Freeness`` and Csordás & Schmidhuber's code do; the
            gradient into u_{t−1} and ψ_t flows either way.

    Returns:
        u_t, `[B, N]` in [0, 1].
    """
    if not write_gradient:
        prev_write_weights = prev_write_weights.detach()
    if prev_write_weights.shape[1] == 1:
        w = prev_write_weights[:, 0]
    else:
        w = 1.0 - torch.prod(1.0 - prev_write_weights, dim=1)
    return (prev_usage + w - prev_usage * w) * psi


def allocation(usage: Tensor, eps: float = EPSILON) -> Tensor:
    """Allocation weighting a_t[φ_j] = (1 − u_t[φ_j]) Π_{i<j} u_t[φ_i], φ = slots sorted by ascending usage.

    The product is an exclusive cumulative product over the sorted usages; the result is scattered back
    to slot order. Usage is first mapped to ε + (1 − ε) u (deepmind/dnc), so the weighting's total
    Σ_i a[i] = 1 − Π_i u[i] is always below 1 and the gradient of the product stays finite.

    Args:
        usage: u_t, `[B, N]` in [0, 1].

    Returns:
        a_t, `[B, N]`, non-negative with sum ≤ 1; the least used slot gets the largest share.
    """
    u = eps + (1.0 - eps) * usage
    sorted_usage, phi = torch.sort(u, dim=-1, stable=True)  # φ: free list, least used first; ties by slot
    ones = torch.ones_like(sorted_usage[..., :1])
    prod_before = torch.cumprod(torch.cat([ones, sorted_usage[..., :-1]], dim=-1), dim=-1)  # exclusive
    sorted_alloc = (1.0 - sorted_usage) * prod_before
    return torch.zeros_like(sorted_alloc).scatter(-1, phi, sorted_alloc)


def write_allocations(usage: Tensor, gates: Tensor, eps: float = EPSILON) -> Tensor:
    """Allocation weightings of Hw write heads; each head's allocation counts as used for the next.

    For Hw = 1 this is :func:`allocation`. For several heads (deepmind/dnc), head j allocates from
    u^{(j)} and then u^{(j+1)} = u^{(j)} + (1 − u^{(j)}) ⊙ g_j a^{(j)}, where g_j = g^a_j g^w_j: so two
    heads never both take the same free slot. (This recursion over write heads is inherently sequential.)

    Args:
        usage: u_t, `[B, N]`.
        gates: g_j = allocation gate × write gate of each head, `[B, Hw]`.

    Returns:
        `[B, Hw, N]` allocation weightings.
    """
    out = []
    for j in range(gates.shape[1]):
        a = allocation(usage, eps)
        out.append(a)
        if j + 1 < gates.shape[1]:
            usage = usage + (1.0 - usage) * gates[:, j : j + 1] * a
    return torch.stack(out, dim=1)  # (B, Hw, N)


def write_weights(
    allocation_weights: Tensor, content_weights: Tensor, allocation_gates: Tensor, write_gates: Tensor
) -> Tensor:
    """Write weighting w^w_t = g^w_t [g^a_t a_t + (1 − g^a_t) c^w_t].

    Args:
        allocation_weights: a_t, `[B, Hw, N]`.
        content_weights: c^w_t (write content weighting on M_{t−1}), `[B, Hw, N]`.
        allocation_gates: g^a_t, `[B, Hw]`.
        write_gates: g^w_t, `[B, Hw]`.

    Returns:
        w^w_t, `[B, Hw, N]`.
    """
    ga = allocation_gates.unsqueeze(-1)
    return write_gates.unsqueeze(-1) * (ga * allocation_weights + (1.0 - ga) * content_weights)


def erase_and_write(
    memory: Tensor,
    write_weights: Tensor,
    erase_vectors: Tensor,
    write_vectors: Tensor,
    psi: Tensor | None = None,
) -> Tensor:
    """Memory update M_t = M_{t−1} ⊙ (E − w^w e^T) + w^w v^T.

    Several write heads erase multiplicatively, Π_j (E − w^{w,j} e_j^T), and add Σ_j w^{w,j} v_j^T
    (deepmind/dnc). With ``psi`` (Csordás & Schmidhuber 2019, de-allocation), freed slots also lose their
    content: the erase term is further multiplied row-wise by ψ_t, M_t = M_{t−1} ⊙ (E − w^w e^T) ⊙ ψ_t 1^T
    + w^w v^T.

    Args:
        memory: M_{t−1}, `[B, N, W]`.
        write_weights: w^w_t, `[B, Hw, N]`.
        erase_vectors: e_t, `[B, Hw, W]` in [0, 1].
        write_vectors: v_t, `[B, Hw, W]`.
        psi: retention ψ_t `[B, N]`, or None for the paper's update.

    Returns:
        M_t, `[B, N, W]`.
    """
    if write_weights.shape[1] == 1:
        w = write_weights[:, 0].unsqueeze(-1)  # (B, N, 1)
        keep = 1.0 - w * erase_vectors  # (B, N, W): e broadcast from (B, 1, W)
        add = w * write_vectors  # (B, N, W)
    else:
        w = write_weights.unsqueeze(-1)  # (B, Hw, N, 1)
        keep = torch.prod(1.0 - w * erase_vectors.unsqueeze(2), dim=1)  # (B, N, W)
        add = torch.matmul(write_weights.transpose(1, 2), write_vectors)  # (B, N, W)
    if psi is not None:
        keep = keep * psi.unsqueeze(-1)
    return memory * keep + add


def precedence(prev_precedence: Tensor, write_weights: Tensor) -> Tensor:
    """Precedence weighting p_t = (1 − Σ_i w^w_t[i]) p_{t−1} + w^w_t, one per write head.

    Args:
        prev_precedence: p_{t−1}, `[B, Hw, N]`.
        write_weights: w^w_t, `[B, Hw, N]`.

    Returns:
        p_t, `[B, Hw, N]`: where the last write went, with sum ≤ 1.
    """
    return (1.0 - write_weights.sum(-1, keepdim=True)) * prev_precedence + write_weights


def link(prev_link: Tensor, write_weights: Tensor, prev_precedence: Tensor) -> Tensor:
    """Temporal link matrix L_t[i, j] = (1 − w^w_t[i] − w^w_t[j]) L_{t−1}[i, j] + w^w_t[i] p_{t−1}[j], L_t[i, i] = 0.

    L_t[i, j] is the degree to which slot i was written right after slot j.

    Args:
        prev_link: L_{t−1}, `[B, Hw, N, N]`.
        write_weights: w^w_t, `[B, Hw, N]`.
        prev_precedence: p_{t−1}, `[B, Hw, N]`.

    Returns:
        L_t, `[B, Hw, N, N]` with a zero diagonal.
    """
    w_i = write_weights.unsqueeze(-1)  # (B, Hw, N, 1)
    w_j = write_weights.unsqueeze(-2)  # (B, Hw, 1, N)
    new = (1.0 - w_i - w_j) * prev_link + w_i * prev_precedence.unsqueeze(-2)  # (B, Hw, N, N)
    return new.diagonal_scatter(torch.zeros_like(write_weights), dim1=-2, dim2=-1)


def directional_weights(link: Tensor, prev_read_weights: Tensor) -> tuple[Tensor, Tensor]:
    """Forward and backward weightings f^i_t = L_t w^{r,i}_{t−1} and b^i_t = L_t^T w^{r,i}_{t−1}.

    Args:
        link: L_t, `[B, Hw, N, N]`.
        prev_read_weights: w^r_{t−1}, `[B, R, N]`.

    Returns:
        (f, b), each `[B, Hw, R, N]`: one per write head's link matrix and read head.
    """
    w = prev_read_weights.unsqueeze(1)  # (B, 1, R, N)
    forward = torch.matmul(w, link.transpose(-1, -2))  # (B, Hw, R, N): f[i] = Σ_j L[i, j] w[j]
    backward = torch.matmul(w, link)  # (B, Hw, R, N): b[j] = Σ_i L[i, j] w[i]
    return forward, backward


def sharpen(weights: Tensor, sharpness: Tensor, eps: float = EPSILON) -> Tensor:
    """Link-distribution sharpness control S(d, s)[i] = (d[i] + ε)^s / Σ_j (d[j] + ε)^s (Csordás & Schmidhuber 2019).

    Computed as softmax(s log(d + ε)), which is the same quotient without overflow.

    Args:
        weights: d ≥ 0, `[B, ..., N]` (forward or backward weightings).
        sharpness: s ≥ 1 (oneplus of the controller's output), shape of ``weights`` without N, or
            broadcastable to it.

    Returns:
        `[B, ..., N]` distributions, sharper than d for s > 1.
    """
    return torch.softmax(sharpness.unsqueeze(-1) * torch.log(weights + eps), dim=-1)


def read_weights(read_modes: Tensor, content: Tensor, forward: Tensor, backward: Tensor) -> Tensor:
    """Read weighting w^{r,i}_t = π^i_t[1] b^i_t + π^i_t[2] c^{r,i}_t + π^i_t[3] f^i_t.

    With Hw write heads the modes are (backward per write head, content, forward per write head).

    Args:
        read_modes: π_t, `[B, R, 1 + 2 Hw]`, each row a distribution (softmax).
        content: c^r_t, `[B, R, N]`.
        forward: f_t, `[B, Hw, R, N]`.
        backward: b_t, `[B, Hw, R, N]`.

    Returns:
        w^r_t, `[B, R, N]`.
    """
    Hw = forward.shape[1]
    pi = read_modes.transpose(1, 2).unsqueeze(-1)  # (B, 1 + 2Hw, R, 1)
    out = pi[:, Hw] * content
    out = out + (pi[:, :Hw] * backward).sum(1) + (pi[:, Hw + 1 :] * forward).sum(1)
    return out


def read_vectors(memory: Tensor, read_weights: Tensor) -> Tensor:
    """Read vectors r^i_t = M_t^T w^{r,i}_t.

    Args:
        memory: M_t, `[B, N, W]`.
        read_weights: w^r_t, `[B, R, N]`.

    Returns:
        r_t, `[B, R, W]`.
    """
    return torch.matmul(read_weights, memory)
