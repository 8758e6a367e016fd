"""Sparse Access Memory (SAM; Rae et al., NIPS 2016, "Scaling Memory-Augmented Neural Networks with Sparse
Reads and Writes") as the DNC's ``memory="sam"``, and with the sparse temporal link as ``memory="sdnc"``.

The DNC's memory touches all N slots every step (dense content weightings, allocation sorts all usages, an
N × N link). SAM keeps M `[B, N, W]` but makes every weighting K-sparse (section 3 of the paper):

- read (eq. 3 with section 3.1): each read head's content lookup keeps the K slots most similar to its key
  (here an exact top-K of the cosine similarity); w^R_t is the softmax of β·D(k, M_t[i]) over those K only;
  r_t = Σ_i w^R_t(i) M_t(i).
- write (eq. 5): w^W_t = α_t (γ_t w^R_{t−1} + (1 − γ_t) I^U_t), a gated interpolation between the previous
  step's read locations and the least recently used slot (I^U_t its one-hot), so at most R·K + 1 non-zeros.
  With R read heads w^R_{t−1} here is their mean (each head's weights sum to 1, so the mean does too).
- memory (eq. 4 with section 3.2): M_t = (1 − R_t) ⊙ M_{t−1} + A_t with the erase R_t = I^U_t 1^T (the least
  recently used row is cleared) and A_t = w^W_t a_t^T, touching only the written rows.
- usage (section 3.3): U_t(i) = the number of steps since slot i last had a non-negligible access,
  w^W_t(i) + w^R_t(i) > δ; the least recently used slot is argmax_i U_{t−1}(i) (first index on ties).

The SDNC (the paper's sparse DNC) adds the DNC's temporal link, built from the K-sparse write and precedence
weightings (:mod:`.sparse_temporal`), and reads with the DNC's modes: w^R_t = π_b b_t + π_c c_t + π_f f_t, with
c_t SAM's K-sparse content weighting, then again K-sparse (the K largest, renormalised to their total).

Weightings are (values, indices) pairs: reads `[B, R, K]`, the write `[B, R·K + 1]`; indices live in the state
as floats like every mnemonet state (exact up to 2^24 slots in float32).

Two implementations of the memory side: :class:`FunctionalMemory` (each write returns a new M; readable, used
by ``step`` and analysis) and ``kernels.sparse_memory.SparseMemoryTape`` (a whole sequence in place, autograd
through the sparse changes only; used by ``DNCCell.sequence``). Tests hold them equal, in values and gradients.
What differs from the paper (exact top-K instead of an approximate nearest-neighbour index, the O(N) usage
scan) is listed in docs/dnc_sam.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnemonet._checks import check_choice, check_positive, check_tensor
from mnemonet.kernels.sparse_memory import SparseMemoryTape, row_norms
from mnemonet.models.dnc import addressing as A
from mnemonet.models.dnc.interface import STRENGTHS
from mnemonet.models.dnc.sparse_temporal import sparse_directional, sparse_link_update, sparse_precedence, sparsify

DELTA = 0.005
"""δ: an access of weight above δ counts as a use of the slot for the least-recently-used rule."""


class SparseInterface(NamedTuple):
    """The controls of one SAM step (R read heads, one write).

    Attributes:
        read_keys: k^r, `[B, R, W]`.
        read_strengths: β^r, `[B, R]` (oneplus, or softplus with ``strength="softplus"``).
        write_vector: a_t, `[B, W]`.
        write_gate: α_t ∈ [0, 1], `[B]`.
        interpolation_gate: γ_t ∈ [0, 1], `[B]`: previously read slots (1) vs the least recently used (0).
        read_modes: π_t, `[B, R, 3]` (backward, content, forward) with the SDNC's link, else None.
    """

    read_keys: Tensor
    read_strengths: Tensor
    write_vector: Tensor
    write_gate: Tensor
    interpolation_gate: Tensor
    read_modes: Tensor | None = None


class SparseAccessState(NamedTuple):
    """SAM's memory and addressing state.

    Attributes:
        memory: M_t, `[B, N, W]`.
        usage: U_t, `[B, N]`: steps since each slot's last non-negligible access.
        read_weights: w^R_t values, `[B, R, K]`.
        read_indices: their slots, `[B, R, K]` (float).
        write_weights: w^W_t values, `[B, R·K + 1]`.
        write_indices: their slots, `[B, R·K + 1]` (float).
        precedence_weights, precedence_indices: p̂_t, `[B, K]` each (SDNC; `[B, 0]` for SAM).
        link_values, link_rows, link_cols: the entries of L_t, `[B, C]` each (SDNC; `[B, 0]` for SAM).
    """

    memory: Tensor
    usage: Tensor
    read_weights: Tensor
    read_indices: Tensor
    write_weights: Tensor
    write_indices: Tensor
    precedence_weights: Tensor
    precedence_indices: Tensor
    link_values: Tensor
    link_rows: Tensor
    link_cols: Tensor


class SparseAccessInfo(NamedTuple):
    """What one SAM step did (for traces): the sparse weightings, usage, gates and the erased slot."""

    write_weights: Tensor
    write_indices: Tensor
    read_weights: Tensor
    read_indices: Tensor
    usage: Tensor
    write_gates: Tensor
    interpolation_gates: Tensor
    least_used: Tensor


def sparse_interface_size(word_size: int, num_reads: int, link: bool = False) -> int:
    """Length of SAM's ξ_t: read keys R·W, write vector W, read strengths R, gates α and γ; + 3R read modes (SDNC)."""
    return num_reads * word_size + word_size + num_reads + 2 + (3 * num_reads if link else 0)


def split_sparse_interface(
    xi: Tensor, word_size: int, num_reads: int, strength: str = "oneplus", link: bool = False
) -> SparseInterface:
    """Split ξ_t into SAM's controls: raw keys and write vector, oneplus strengths, sigmoid gates, softmax modes.

    Args:
        xi: `[B, sparse_interface_size(W, R, link)]`.
        word_size, num_reads: W, R.
        strength: ``"oneplus"`` or ``"softplus"`` read strengths.
        link: ξ carries the SDNC's read modes.
    """
    W, R = word_size, num_reads
    check_tensor(xi, "xi", ("B", sparse_interface_size(W, R, link)))
    B = xi.shape[0]
    keys, vector, strengths, gates, modes = torch.split(xi, [R * W, W, R, 2, 3 * R if link else 0], dim=-1)
    strengths = A.oneplus(strengths) if strength == "oneplus" else F.softplus(strengths)
    gates = torch.sigmoid(gates)
    modes = torch.softmax(modes.reshape(B, R, 3), dim=-1) if link else None  # (B, R, 3)
    return SparseInterface(keys.reshape(B, R, W), strengths, vector, gates[:, 0], gates[:, 1], modes)


def initial_sparse_state(
    batch_size: int,
    memory_size: int,
    word_size: int,
    num_reads: int,
    k: int,
    link_capacity: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> SparseAccessState:
    """Empty memory, zero usage, zero weightings (at slot 0); an empty link of ``link_capacity`` entries (0: SAM)."""
    B, N, W, R, C = batch_size, memory_size, word_size, num_reads, link_capacity
    Kp = k if C else 0

    def z(*shape: int) -> Tensor:
        return torch.zeros(*shape, device=device, dtype=dtype)

    return SparseAccessState(
        z(B, N, W), z(B, N), z(B, R, k), z(B, R, k), z(B, R * k + 1), z(B, R * k + 1),
        z(B, Kp), z(B, Kp), z(B, C), z(B, C), z(B, C),
    )  # fmt: skip


def least_recently_used(usage: Tensor) -> Tensor:
    """The slot with the largest U_{t−1} (longest since its last access), first on ties: `[B, N]` -> `[B]`."""
    return usage.argmax(-1)


def sparse_write_weights(
    prev_read_weights: Tensor, prev_read_indices: Tensor, least_used: Tensor, write_gate: Tensor, gate: Tensor
) -> tuple[Tensor, Tensor]:
    """SAM's write weighting (eq. 5) w^W_t = α_t (γ_t w̄^R_{t−1} + (1 − γ_t) I^U_t), as values and indices.

    Args:
        prev_read_weights: w^R_{t−1} values, `[B, R, K]`.
        prev_read_indices: their slots, `[B, R, K]` (integer-valued).
        least_used: the least recently used slot of each batch element, `[B]` (integer).
        write_gate: α_t, `[B]`.
        gate: γ_t (interpolation gate), `[B]`.

    Returns:
        (values `[B, R·K + 1]`, slots `[B, R·K + 1]` int64): the R·K previously read entries, each scaled by
        α γ / R, then the least recently used slot with α (1 − γ). A slot listed twice gets the sum.
    """
    B, R, K = prev_read_weights.shape
    a, g = write_gate.unsqueeze(-1), gate.unsqueeze(-1)  # (B, 1)
    read = a * g * prev_read_weights.reshape(B, R * K) / R  # α γ w̄^R_{t−1}, (B, R·K)
    values = torch.cat([read, a * (1.0 - g)], dim=-1)  # (B, R·K + 1)
    indices = torch.cat([prev_read_indices.reshape(B, R * K).long(), least_used.unsqueeze(-1)], dim=-1)
    return values, indices


def nearest(memory: Tensor, keys: Tensor, k: int, outer_eps: bool = False, norms: Tensor | None = None) -> Tensor:
    """The K slots most cosine-similar to each key (an exact top-K; the paper uses approximate nearest neighbours).

    No gradient: which slots are chosen is discrete. Without ``outer_eps`` the key's norm is a positive factor
    per head and is left out of the ranking.

    Args:
        memory: M, `[B, N, W]`.
        keys: `[B, H, W]`.
        k: K.
        outer_eps: rank by deepmind/dnc's cosine with an ε on the norm product.
        norms: |M[i]|_ε `[B, N]` if known (the tape keeps them), else computed.

    Returns:
        `[B, H, K]` int64 slot indices.
    """
    with torch.no_grad():
        norms = row_norms(memory, A.EPSILON) if norms is None else norms  # (B, N)
        dot = torch.bmm(keys, memory.transpose(1, 2))  # (B, H, N)
        if outer_eps:
            score = dot / (row_norms(keys, A.EPSILON).unsqueeze(-1) * norms.unsqueeze(1) + A.EPSILON)
        else:
            score = dot / norms.unsqueeze(1)  # cosine times |k|_ε, (B, H, N)
        return score.topk(k, dim=-1).indices


def sparse_read_weights(rows: Tensor, keys: Tensor, strengths: Tensor, outer_eps: bool = False) -> Tensor:
    """SAM's read weighting over the K nearest slots: softmax_k(β D(k, M[i_k])) (eq. 3 restricted to K slots).

    Args:
        rows: M_t at the K chosen slots, `[B, R, K, W]`.
        keys: k^r, `[B, R, W]`.
        strengths: β^r, `[B, R]`.
        outer_eps: deepmind/dnc's ε on the norm product (see ``addressing.cosine_similarity``).

    Returns:
        `[B, R, K]`, each row a distribution over its K slots.
    """
    eps = A.EPSILON
    dot = (rows * keys.unsqueeze(2)).sum(-1)  # (B, R, K)
    norm = torch.sqrt(keys.square().sum(-1, keepdim=True) + eps) * torch.sqrt(rows.square().sum(-1) + eps)
    sim = dot / (norm + eps if outer_eps else norm)
    return torch.softmax(strengths.unsqueeze(-1) * sim, dim=-1)


def sparse_usage(
    usage: Tensor,
    write_weights: Tensor,
    write_indices: Tensor,
    read_weights: Tensor,
    read_indices: Tensor,
    delta: float = DELTA,
) -> Tensor:
    """U_t(i) = 0 where w^W_t(i) + Σ_heads w^R_t(i) > δ, else U_{t−1}(i) + 1 (section 3.3; no gradient).

    Args:
        usage: U_{t−1}, `[B, N]`.
        write_weights, write_indices: w^W_t, `[B, E]` each (indices integer).
        read_weights, read_indices: w^R_t, `[B, R, K]` each.
        delta: δ.

    Returns:
        U_t, `[B, N]`.
    """
    B = usage.shape[0]
    with torch.no_grad():
        values = torch.cat([write_weights, read_weights.reshape(B, -1)], -1)  # (B, E + R·K)
        slots = torch.cat([write_indices, read_indices.reshape(B, -1)], -1).long()
        access = torch.zeros_like(usage).scatter_add_(-1, slots, values)  # (B, N)
        return torch.where(access > delta, torch.zeros_like(usage), usage + 1.0)


def write_memory(memory: Tensor, least_used: Tensor, values: Tensor, indices: Tensor, add: Tensor) -> Tensor:
    """M_t = (1 − I^U_t 1^T) ⊙ M_{t−1} + w^W_t a_t^T (eq. 4 with SAM's erase), out of place.

    Args:
        memory: M_{t−1}, `[B, N, W]`.
        least_used: the erased slot, `[B]` int64.
        values, indices: w^W_t, `[B, E]` each (indices int64).
        add: a_t, `[B, W]`.

    Returns:
        M_t, `[B, N, W]`.
    """
    batch = torch.arange(memory.shape[0], device=memory.device)
    erased = memory.index_put((batch, least_used), memory.new_zeros(()))
    return erased.index_put((batch.unsqueeze(1), indices), values.unsqueeze(-1) * add.unsqueeze(1), accumulate=True)


class FunctionalMemory:
    """The memory as a plain tensor that every write replaces (the readable path); same methods as the tape."""

    def __init__(self, memory: Tensor) -> None:
        self.memory = memory

    def write(self, token: None, lru: Tensor, indices: Tensor, values: Tensor, add: Tensor) -> None:
        self.memory = write_memory(self.memory, lru, values, indices, add)

    def current(self) -> Tensor:
        return self.memory

    norms = None  # computed by ``nearest`` from the memory

    def rows(self, token: None, indices: Tensor) -> tuple[Tensor, None]:
        B = indices.shape[0]
        batch = torch.arange(B, device=indices.device).view(B, 1, 1)
        return self.memory[batch, indices], None  # (B, H, K, W)


def sam_step(
    iface: SparseInterface,
    state: SparseAccessState,
    k: int,
    memory: FunctionalMemory | SparseMemoryTape,
    token: Tensor | None = None,
    delta: float = DELTA,
    outer_eps: bool = False,
) -> tuple[Tensor, SparseAccessState, SparseAccessInfo, Tensor | None]:
    """One SAM step: write (eq. 4, 5), then read K slots per head (eq. 3), then the usage (section 3.3).

    Args:
        iface: this step's controls.
        state: the previous state (its ``memory`` field is ignored: ``memory`` holds M_{t−1}).
        k: K, non-zeros per read weighting.
        memory: a :class:`FunctionalMemory` or a ``SparseMemoryTape`` holding M_{t−1}; written in place.
        token: the tape's token (None for a functional memory).

    Returns:
        (read vectors r_t `[B, R, W]`, the new state with ``memory`` = the functional M_t or the token, info,
        the next token).
    """
    lru = least_recently_used(state.usage)  # I^U_t from U_{t−1}, (B,)
    prev_idx = state.read_indices.long()
    ww, wi = sparse_write_weights(
        state.read_weights, prev_idx, lru, iface.write_gate, iface.interpolation_gate
    )  # w^W_t, (B, R·K + 1)
    token = memory.write(token, lru, wi, ww, iface.write_vector)  # M_t
    idx = nearest(memory.current(), iface.read_keys, k, outer_eps, memory.norms)  # (B, R, K)
    rows, token = memory.rows(token, idx)  # M_t at the K nearest slots, (B, R, K, W)
    wr = sparse_read_weights(rows, iface.read_keys, iface.read_strengths, outer_eps)  # c_t or w^R_t, (B, R, K)
    dtype = state.usage.dtype
    link = state[SparseAccessState._fields.index("precedence_weights") :]  # p̂, L (`[B, 0]` for SAM)
    if iface.read_modes is not None:  # SDNC: the link, then w^R_t = π_b b + π_c c + π_f f, K-sparse
        wr, idx, link = sdnc_read_weights(state, iface.read_modes, ww, wi, wr, idx, k)
        link = tuple(t.to(dtype) for t in link)
        rows, token = memory.rows(token, idx)
    read_vectors = (wr.unsqueeze(-1) * rows).sum(2)  # r_t = Σ_k w^R_t(k) M_t(i_k), (B, R, W)
    usage = sparse_usage(state.usage, ww, wi, wr, idx, delta)  # U_t
    new_memory = memory.memory if isinstance(memory, FunctionalMemory) else token
    new = SparseAccessState(new_memory, usage, wr, idx.to(dtype), ww, wi.to(dtype), *link)
    info = SparseAccessInfo(
        ww, wi.to(dtype), wr, idx.to(dtype), usage, iface.write_gate, iface.interpolation_gate, lru.to(dtype)
    )
    return read_vectors, new, info, token


def sdnc_read_weights(
    state: SparseAccessState,
    read_modes: Tensor,
    write_values: Tensor,
    write_indices: Tensor,
    content: Tensor,
    content_indices: Tensor,
    k: int,
) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """The SDNC's link update and read weighting w^R_t = sparsify_K(π_b b_t + π_c c_t + π_f f_t).

    Args:
        state: the previous state (its p̂_{t−1}, L_{t−1} and w^R_{t−1}).
        read_modes: π_t, `[B, R, 3]` (backward, content, forward).
        write_values, write_indices: w^W_t, `[B, E]` each (int64 indices).
        content, content_indices: c_t, SAM's K-sparse content weighting, `[B, R, K]` each.
        k: K.

    Returns:
        (w^R_t values `[B, R, K]`, int64 slots `[B, R, K]`, (p̂_t values, p̂_t slots, L_t values, rows, cols)).
    """
    N = state.usage.shape[-1]
    w_hat, w_hat_idx = sparsify(write_values, write_indices, k, N)  # ŵ_t, (B, K)
    p_idx, rows, cols = state.precedence_indices.long(), state.link_rows.long(), state.link_cols.long()
    lv, lr, lc = sparse_link_update(state.link_values, rows, cols, w_hat, w_hat_idx, state.precedence_weights, p_idx)
    p, p_i = sparse_precedence(state.precedence_weights, p_idx, w_hat, w_hat_idx, N)  # p̂_t
    fv, fi, bv, bi = sparse_directional(lv, lr, lc, state.read_weights, state.read_indices.long())  # (B, R, C)
    pi = read_modes.unsqueeze(-1)  # (B, R, 3, 1)
    values = torch.cat([pi[:, :, 0] * bv, pi[:, :, 1] * content, pi[:, :, 2] * fv], -1)  # (B, R, 2C + K)
    wr, idx = sparsify(values, torch.cat([bi, content_indices, fi], -1), k, N)  # (B, R, K)
    return wr, idx, (p, p_i, lv, lr, lc)


class SparseMemoryAccess(nn.Module):
    """SAM's memory with its interface projection ξ_t = W_ξ h_t + b (the only parameters).

    Args:
        input_size: size of the controller output h_t.
        memory_size: N slots.
        word_size: W.
        num_reads: R read heads.
        k: K, the non-zeros of each read weighting (at most N).
        delta: δ of the least-recently-used rule.
        outer_eps: deepmind/dnc's ε in the cosine similarity.
        strength: ``"oneplus"`` or ``"softplus"`` read strengths.
        link: the SDNC's sparse temporal link and read modes (``memory="sdnc"``).
        link_capacity: C, the entries the link keeps (default 16·K²).
    """

    def __init__(
        self,
        input_size: int,
        memory_size: int,
        word_size: int,
        num_reads: int,
        k: int = 4,
        delta: float = DELTA,
        outer_eps: bool = False,
        strength: str = "oneplus",
        link: bool = False,
        link_capacity: int | None = None,
    ) -> None:
        super().__init__()
        for value, name in [
            (input_size, "input_size"),
            (memory_size, "memory_size"),
            (word_size, "word_size"),
            (num_reads, "num_reads"),
            (k, "sparse_k"),
        ]:
            check_positive(value, name)
        link_capacity = 16 * k * k if link_capacity is None else link_capacity
        if link:
            check_positive(link_capacity, "sparse_link_capacity")
        if k > memory_size:
            raise ValueError(f"sparse_k: expected at most memory_size = {memory_size}, got {k}")
        if not (isinstance(delta, (int, float)) and 0.0 <= delta < 1.0):
            raise ValueError(f"sparse_delta: expected a number in [0, 1), got {delta!r}")
        check_choice(strength, "strength", list(STRENGTHS))
        self.input_size, self.memory_size = input_size, memory_size
        self.word_size, self.num_reads = word_size, num_reads
        self.num_writes = 1
        self.k, self.delta, self.outer_eps, self.strength = k, float(delta), outer_eps, strength
        self.link, self.link_capacity = link, link_capacity if link else 0
        self.uses_fused_step = False
        self.interface = nn.Linear(input_size, sparse_interface_size(word_size, num_reads, link))

    def extra_repr(self) -> str:
        return (
            f"input_size={self.input_size}, memory_size={self.memory_size}, word_size={self.word_size}, "
            f"num_reads={self.num_reads}, sparse_k={self.k}"
            + (f", link_capacity={self.link_capacity}" if self.link else "")
        )

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> SparseAccessState:
        """Empty memory for ``batch_size`` sequences."""
        ref = self.interface.weight
        return initial_sparse_state(
            batch_size, self.memory_size, self.word_size, self.num_reads, self.k, self.link_capacity,
            device=device or ref.device, dtype=dtype or ref.dtype,
        )  # fmt: skip

    def split(self, h: Tensor) -> SparseInterface:
        """ξ_t = W_ξ h_t + b split into SAM's controls."""
        return split_sparse_interface(self.interface(h), self.word_size, self.num_reads, self.strength, self.link)

    def forward(
        self,
        h: Tensor,
        state: SparseAccessState,
        with_info: bool = False,
        projection: Callable[[Tensor, Tensor | None], Tensor] | None = None,
        tape: SparseMemoryTape | None = None,
    ) -> tuple[Tensor, SparseAccessState, SparseAccessInfo | None]:
        """One SAM step driven by h `[B, input_size]`: (r_t `[B, R, W]`, new state, info or None).

        With ``tape`` (a ``SparseMemoryTape`` opened by :meth:`open`), ``state.memory`` is the tape's token and
        the step writes the tape in place; otherwise the step is out of place.
        """
        xi = self.interface(h) if projection is None else projection(h, self.interface.bias)
        iface = split_sparse_interface(xi, self.word_size, self.num_reads, self.strength, self.link)
        if tape is None:
            memory, token = FunctionalMemory(state.memory), None
        else:
            memory, token = tape, state.memory
        r, new, info, _ = sam_step(iface, state, self.k, memory, token, self.delta, self.outer_eps)
        return r, new, info if with_info else None

    def open(self, state: SparseAccessState) -> tuple[SparseMemoryTape, SparseAccessState]:
        """Start a sequence in place: a tape holding M_0, and the state with the tape's token as ``memory``."""
        tape, token = SparseMemoryTape.open(state.memory)
        return tape, state._replace(memory=token)

    @staticmethod
    def close(tape: SparseMemoryTape, state: SparseAccessState) -> SparseAccessState:
        """End a sequence: the state with M_T in place of the token."""
        return state._replace(memory=tape.close(state.memory))
