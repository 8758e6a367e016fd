"""Recurrent Independent Mechanisms (RIMs; Goyal et al. 2019): n recurrent modules that compete to read the input.

At every step each module queries the input (and a null input of zeros) with attention; the k modules
that attend least to the null input are active. Active modules update their state with their own
LSTM or GRU (grouped weights: one batched matmul for all modules, see :mod:`mnemonet.models.grouped`),
then read from all modules through multi-head attention and add the result to their state. Inactive
modules keep their state bit for bit and get no gradient through that step's update.

Equations, per step t, module k, head h (numbers refer to :class:`RIMsCell`'s docstring):

(1) ``K_m = x_m W^k,  V_m = x_m W^v``          keys/values of each input source m; the null input is a
                                                zero vector, so its key and value are 0 (no biases)
(2) ``Q_k = h_{t-1,k} W^q_k``                   one query per module (grouped weight)
(3) ``α_k = softmax([0, Q_k·K_1, ..., Q_k·K_M] / sqrt(d_k))`` attention over [null, inputs]
(4) ``A_k = Σ_m α_{k,m} V_m``                   the module's read (heads concatenated)
(5) ``S_t = top-k_k(-mean_h α_{k,null})``       the k modules that attend least to null are active
(6) ``h̃_k = D_k(A_k, h_{t-1,k})`` for k ∈ S_t;  ``h̃_k = h_{t-1,k}`` otherwise   (LSTM or GRU per module)
(7) ``h_k = h̃_k + W^o_k [softmax_j(Q^c_k·K^c_j / sqrt(d_c)) V^c_j]`` for k ∈ S_t (communication,
    ``Q^c_k = h̃_k W^{cq}_k``, ``K^c_j = h̃_j W^{ck}_j``, ``V^c_j = h̃_j W^{cv}_j``); ``h_k = h_{t-1,k}`` otherwise.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnemonet._checks import check_choice, check_positive, check_tensor
from mnemonet.models.base import Cell
from mnemonet.models.grouped import GroupedGRUCell, GroupedLinear, GroupedLSTMCell
from mnemonet.models.recurrent import Recurrent
from mnemonet.models.registry import register

DYNAMICS = ("lstm", "gru")
SELECTIONS = ("null", "score")


class RIMsState(NamedTuple):
    """State of a RIMs cell with LSTM dynamics.

    Attributes:
        h: `[B, n, module_size]` hidden state of each module.
        c: `[B, n, module_size]` cell state of each module.
    """

    h: Tensor
    c: Tensor


class RIMsGRUState(NamedTuple):
    """State of a RIMs cell with GRU dynamics.

    Attributes:
        h: `[B, n, module_size]` hidden state of each module.
    """

    h: Tensor


class RIMsStep(NamedTuple):
    """What one step of a RIMs cell produces besides its state.

    Attributes:
        y: `[B, n * module_size]` the concatenated module states after the step.
        active: `[B, n]` bool, true for the modules selected at this step (the set S_t).
        null_attention: `[B, n]` attention on the null input, averaged over heads (eq. 3).
    """

    y: Tensor
    active: Tensor
    null_attention: Tensor


# ---------------------------------------------------------------------------------------------------------
# The equations, one pure function each.
# ---------------------------------------------------------------------------------------------------------


def input_scores(query: Tensor, keys: Tensor) -> Tensor:
    """Eq. (3), scores: ``Q_k·K_m / sqrt(d_k)`` for every module, head and input source.

    Args:
        query: `[B, n, H, d_k]` queries of the n modules (eq. 2).
        keys: `[B, M, H, d_k]` keys of the M input sources (eq. 1).

    Returns:
        `[B, n, H, M]` scores (the null input's score, 0, is not included).
    """
    return torch.einsum("bnhd,bmhd->bnhm", query, keys) / math.sqrt(query.shape[-1])  # (B, n, H, M)


def input_attention(scores: Tensor) -> Tensor:
    """Eq. (3): each module's attention over [null, input sources], per head.

    The null input is a vector of zeros whose key is zero, so its score is exactly 0.

    Args:
        scores: `[B, n, H, M]` from :func:`input_scores`.

    Returns:
        `[B, n, H, 1 + M]` attention probabilities; index 0 is the null input.
    """
    null = scores.new_zeros(*scores.shape[:-1], 1)  # (B, n, H, 1)
    return torch.softmax(torch.cat([null, scores], dim=-1), dim=-1)  # (B, n, H, 1 + M)


def attention_read(probs: Tensor, values: Tensor) -> Tensor:
    """Eq. (4): each module's read of the inputs, heads concatenated (the null value is zero).

    Args:
        probs: `[B, n, H, M]` attention on the M real input sources (null column removed).
        values: `[B, M, H, d_v]` values of the input sources (eq. 1).

    Returns:
        `[B, n, H * d_v]`.
    """
    read = torch.einsum("bnhm,bmhv->bnhv", probs, values)  # (B, n, H, d_v)
    return read.flatten(2)  # (B, n, H * d_v)


def top_k_mask(score: Tensor, k: int) -> Tensor:
    """Eq. (5): true at the k largest entries of each row; ties go to the lower index.

    Ties matter: from the zero initial state every query is zero, so at the first step all modules
    attend equally to null and modules 0..k-1 are selected.

    Args:
        score: `[B, n]` a score per module (higher wins).
        k: number of modules to select, 1 <= k <= n.

    Returns:
        `[B, n]` bool with exactly k true entries per row.
    """
    if k == score.shape[-1]:
        return torch.ones_like(score, dtype=torch.bool)
    idx = torch.sort(score, dim=-1, descending=True, stable=True).indices[..., :k]  # (B, k)
    return torch.zeros_like(score, dtype=torch.bool).scatter_(-1, idx, True)


def communication_attention(q: Tensor, k: Tensor, v: Tensor, dropout: float = 0.0, training: bool = False) -> Tensor:
    """Eq. (7), inner part: multi-head attention among modules, ``softmax(Q K^T / sqrt(d)) V``.

    Dropout (``dropout``, in training) acts on the attention probabilities.

    Args:
        q, k: `[B, H, n, d_k]` queries and keys of the modules.
        v: `[B, H, n, d_v]` values of the modules.

    Returns:
        `[B, H, n, d_v]`.
    """
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)  # (B, H, n, n)
    att = F.dropout(att, dropout, training)
    return att @ v  # (B, H, n, d_v)


# ---------------------------------------------------------------------------------------------------------
# The cell.
# ---------------------------------------------------------------------------------------------------------


class RIMsCell(Cell):
    """One step of Recurrent Independent Mechanisms (Goyal et al. 2019, section 2).

    Per step, with ``H`` input heads and ``H_c`` communication heads:

    1. Input keys and values (eq. 1): ``K = x W^k``, ``V = x W^v`` per head (``input_key``,
       ``input_value``: shared by all modules, no bias, so the null input's key and value are 0).
    2. Queries (eq. 2): ``Q_k = h_{t-1,k} W^q_k`` (``input_query``, one weight per module).
    3. Input attention (eq. 3): ``α_k = softmax([0, Q_k·K] / sqrt(d_k))`` over [null, x].
    4. Read (eq. 4): ``A_k = α_{k,x} V`` (``input_dropout`` drops entries of α in training).
    5. Selection (eq. 5): with ``selection="null"`` (the paper's rule) the k modules with the least
       attention on null, averaged over heads, are active; with ``selection="score"`` the k modules
       with the largest input score ``mean_h logsumexp_m(Q_k·K_m / sqrt(d_k))``. Both rules agree when
       H = 1. The selection is not differentiable; ties go to the lower index (from the zero initial
       state all queries are zero, so the first step selects modules 0..k-1).
    6. Dynamics (eq. 6): ``h̃_k, c̃_k = LSTM_k(A_k, (h_{t-1,k}, c_{t-1,k}))`` (or ``GRU_k``) for active
       modules; inactive modules keep ``h_{t-1,k}, c_{t-1,k}`` exactly (``torch.where``, so no gradient
       reaches their update).
    7. Communication (eq. 7): ``h_k = h̃_k + W^o_k MHA(h̃_k; h̃_1..n)`` for active modules only, with
       per-module query/key/value/output maps (``comm_query``, ``comm_key``, ``comm_value``,
       ``comm_output``; no biases) and ``comm_dropout`` on the attention probabilities. Keys and
       values come from every module, inactive ones offering their unchanged state. ``c`` is not
       changed by communication.

    ``forward(x_t, state) -> (y_t, state)`` with ``y_t = h.flatten(1)`` `[B, n * module_size]`.

    Selection trace: ``model.trace(x)`` returns ``"active"``, the `[B, T, n]` bool active masks (false at
    padded steps).

    Args:
        input_size: D, size of x_t.
        num_modules: n.
        module_size: hidden size of each module.
        k: number of active modules per step, 1 <= k <= n (k = n: all modules always active).
        dynamics: ``"lstm"`` (state :class:`RIMsState`) or ``"gru"`` (state :class:`RIMsGRUState`).
        input_heads: H, heads of the input attention.
        input_key_size: d_k of the input attention.
        input_value_size: d_v of the input attention (default ``module_size``); each module's dynamics
            reads ``H * d_v`` features.
        comm_heads: H_c, heads of the communication attention.
        comm_key_size: key size of the communication attention.
        comm_value_size: value size of the communication attention (default ``comm_key_size``).
        input_dropout: dropout probability on the input attention probabilities.
        comm_dropout: dropout probability on the communication attention probabilities.
        selection: ``"null"`` or ``"score"`` (step 5).
    """

    def __init__(
        self,
        input_size: int,
        num_modules: int,
        module_size: int,
        k: int,
        dynamics: str = "lstm",
        input_heads: int = 1,
        input_key_size: int = 64,
        input_value_size: int | None = None,
        comm_heads: int = 4,
        comm_key_size: int = 32,
        comm_value_size: int | None = None,
        input_dropout: float = 0.0,
        comm_dropout: float = 0.0,
        selection: str = "null",
    ) -> None:
        super().__init__()
        for name, value in [
            ("input_size", input_size),
            ("num_modules", num_modules),
            ("module_size", module_size),
            ("k", k),
            ("input_heads", input_heads),
            ("input_key_size", input_key_size),
            ("comm_heads", comm_heads),
            ("comm_key_size", comm_key_size),
        ]:
            check_positive(value, name)
        input_value_size = module_size if input_value_size is None else input_value_size
        comm_value_size = comm_key_size if comm_value_size is None else comm_value_size
        check_positive(input_value_size, "input_value_size")
        check_positive(comm_value_size, "comm_value_size")
        if k > num_modules:
            raise ValueError(f"k: expected an integer in [1, num_modules={num_modules}], got {k}")
        check_choice(dynamics, "dynamics", DYNAMICS)
        check_choice(selection, "selection", SELECTIONS)
        for name, p in [("input_dropout", input_dropout), ("comm_dropout", comm_dropout)]:
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1), got {p}")

        self.input_size = input_size
        self.num_modules = num_modules
        self.module_size = module_size
        self.output_size = num_modules * module_size
        self.k = k
        self.dynamics_kind = dynamics
        self.input_heads, self.input_key_size, self.input_value_size = input_heads, input_key_size, input_value_size
        self.comm_heads, self.comm_key_size, self.comm_value_size = comm_heads, comm_key_size, comm_value_size
        self.input_dropout = input_dropout
        self.comm_dropout = comm_dropout
        self.selection = selection

        n, hs = num_modules, module_size
        # eq. (1): shared input maps, no bias (the null input's key and value are zero)
        self.input_key = nn.Linear(input_size, input_heads * input_key_size, bias=False)
        self.input_value = nn.Linear(input_size, input_heads * input_value_size, bias=False)
        # eq. (2): per-module query maps W^q_k
        self.input_query = GroupedLinear(n, hs, input_heads * input_key_size, bias=False)
        # eq. (6): per-module dynamics D_k
        cell_cls = GroupedLSTMCell if dynamics == "lstm" else GroupedGRUCell
        self.dynamics = cell_cls(n, input_heads * input_value_size, hs)
        # eq. (7): per-module communication maps
        self.comm_query = GroupedLinear(n, hs, comm_heads * comm_key_size, bias=False)
        self.comm_key = GroupedLinear(n, hs, comm_heads * comm_key_size, bias=False)
        self.comm_value = GroupedLinear(n, hs, comm_heads * comm_value_size, bias=False)
        self.comm_output = GroupedLinear(n, comm_heads * comm_value_size, hs, bias=False)

    def extra_repr(self) -> str:
        s = (
            f"{self.input_size}, num_modules={self.num_modules}, module_size={self.module_size}, k={self.k}, "
            f"dynamics={self.dynamics_kind!r}"
        )
        if self.selection != "null":
            s += f", selection={self.selection!r}"
        if self.input_dropout:
            s += f", input_dropout={self.input_dropout}"
        if self.comm_dropout:
            s += f", comm_dropout={self.comm_dropout}"
        return s

    # -- state ------------------------------------------------------------------------------------------

    def initial_state(self, batch_size, device=None, dtype=None) -> RIMsState | RIMsGRUState:
        ref = self.input_query.weight
        z = torch.zeros(
            batch_size, self.num_modules, self.module_size, device=device or ref.device, dtype=dtype or ref.dtype
        )
        return RIMsState(z, z.clone()) if self.dynamics_kind == "lstm" else RIMsGRUState(z)

    # -- the step ---------------------------------------------------------------------------------------

    def project_inputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. (1): keys and values of an input, for one step or a whole sequence at once.

        Args:
            x: `[..., input_size]` (e.g. `[B, D]` or `[B, T, D]`).

        Returns:
            keys `[..., H, d_k]` and values `[..., H, d_v]`.
        """
        keys = self.input_key(x).unflatten(-1, (self.input_heads, self.input_key_size))  # (..., H, d_k)
        values = self.input_value(x).unflatten(-1, (self.input_heads, self.input_value_size))  # (..., H, d_v)
        return keys, values

    def step_projected(
        self, keys: Tensor, values: Tensor, state: RIMsState | RIMsGRUState
    ) -> tuple[RIMsStep, RIMsState | RIMsGRUState]:
        """Eqs. (2)-(7) given the keys and values of M input sources (M = 1 for RIMs; BRIMs adds top-down).

        Args:
            keys: `[B, M, H, d_k]` keys of the input sources (eq. 1).
            values: `[B, M, H, d_v]` values of the input sources.
            state: the previous state, leaves `[B, n, module_size]`.

        Returns:
            ``(RIMsStep(y, active, null_attention), next_state)``.
        """
        h = state.h  # (B, n, hs)
        B, n = h.shape[0], self.num_modules
        # eq. (2): Q_k = h_{t-1,k} W^q_k
        query = self.input_query(h).unflatten(-1, (self.input_heads, self.input_key_size))  # (B, n, H, d_k)
        # eq. (3): attention over [null, inputs]
        scores = input_scores(query, keys)  # (B, n, H, M)
        probs = input_attention(scores)  # (B, n, H, 1 + M)
        null_attention = probs[..., 0].mean(-1).detach()  # (B, n)
        # eq. (5): the active set S_t
        if self.selection == "null":
            active = top_k_mask(-null_attention, self.k)
        else:
            active = top_k_mask(torch.logsumexp(scores.detach(), -1).mean(-1), self.k)
        # eq. (4): the read A_k, input dropout on the attention probabilities
        p_in = F.dropout(probs[..., 1:], self.input_dropout, self.training)  # (B, n, H, M)
        read = attention_read(p_in, values)  # (B, n, H * d_v)
        # eq. (6): dynamics for the active modules, the old state for the others
        m = active.unsqueeze(-1)  # (B, n, 1)
        if isinstance(state, RIMsState):
            h_dyn, c_dyn = self.dynamics(read, h, state.c)
            c_new = torch.where(m, c_dyn, state.c)
        else:
            h_dyn = self.dynamics(read, h)
        h_tilde = torch.where(m, h_dyn, h)  # (B, n, hs)
        # eq. (7): communication among modules, residual on the active ones
        Hc = self.comm_heads
        q = self.comm_query(h_tilde).unflatten(-1, (Hc, self.comm_key_size)).transpose(1, 2)  # (B, Hc, n, d)
        k = self.comm_key(h_tilde).unflatten(-1, (Hc, self.comm_key_size)).transpose(1, 2)  # (B, Hc, n, d)
        v = self.comm_value(h_tilde).unflatten(-1, (Hc, self.comm_value_size)).transpose(1, 2)  # (B, Hc, n, dv)
        comm = communication_attention(q, k, v, self.comm_dropout, self.training)  # (B, Hc, n, dv)
        comm = self.comm_output(comm.transpose(1, 2).reshape(B, n, Hc * self.comm_value_size))  # (B, n, hs)
        h_new = torch.where(m, h_tilde + comm, h)  # (B, n, hs)
        new_state = RIMsState(h_new, c_new) if isinstance(state, RIMsState) else RIMsGRUState(h_new)
        return RIMsStep(h_new.flatten(1), active, null_attention), new_state  # y: (B, n * hs)

    def prepare(self, x: Tensor, mask: Tensor | None = None) -> list[tuple[Tensor, Tensor]]:
        """Eq. (1) for all T steps in one matmul: T pairs of keys `[B, 1, H, d_k]` and values `[B, 1, H, d_v]`."""
        keys, values = self.project_inputs(x)  # (B, T, H, d)
        # one tensor per step (unbind, not keys[:, t]: slicing would make backward fill a [B, T, ...] zero
        # tensor at every step)
        return list(zip(keys.unsqueeze(2).unbind(1), values.unsqueeze(2).unbind(1), strict=True))  # M = 1

    def step(self, p_t, state, t=0, mask=None):
        """Eqs. (2)-(7) from the prepared keys and values of step t."""
        out, new = self.step_projected(*p_t, state)
        return out.y, new

    def trace_step(self, p_t, state, t=0, mask=None):
        """``step`` plus ``active``: `[B, n]` bool, the modules selected at step t (eq. 5)."""
        out, new = self.step_projected(*p_t, state)
        return out.y, new, {"active": out.active}

    def forward(self, x_t, state, t=0, mask=None):
        """One step: `[B, input_size]` -> `[B, n * module_size]` (the concatenated module states)."""
        check_tensor(x_t, "x_t", ("B", self.input_size))
        return self.step(self.prepare(x_t.unsqueeze(1))[0], state)


@register("rims")
def rims(
    input_size: int,
    num_modules: int,
    module_size: int,
    k: int,
    dynamics: str = "lstm",
    input_heads: int = 1,
    input_key_size: int = 64,
    input_value_size: int | None = None,
    comm_heads: int = 4,
    comm_key_size: int = 32,
    comm_value_size: int | None = None,
    input_dropout: float = 0.0,
    comm_dropout: float = 0.0,
    selection: str = "null",
    batch_first: bool = True,
) -> Recurrent:
    """Build a RIMs layer: ``Recurrent(RIMsCell(...))``; see :class:`RIMsCell` for the arguments.

    Example:
        >>> model = rims(input_size=3, num_modules=4, module_size=8, k=2)
        >>> y, state = model(torch.zeros(2, 5, 3))
        >>> tuple(y.shape), tuple(state.h.shape)
        ((2, 5, 32), (2, 4, 8))
    """
    cell = RIMsCell(
        input_size,
        num_modules,
        module_size,
        k,
        dynamics=dynamics,
        input_heads=input_heads,
        input_key_size=input_key_size,
        input_value_size=input_value_size,
        comm_heads=comm_heads,
        comm_key_size=comm_key_size,
        comm_value_size=comm_value_size,
        input_dropout=input_dropout,
        comm_dropout=comm_dropout,
        selection=selection,
    )
    return Recurrent(cell, batch_first=batch_first)


__all__ = [
    "RIMsCell",
    "RIMsGRUState",
    "RIMsState",
    "RIMsStep",
    "attention_read",
    "communication_attention",
    "input_attention",
    "input_scores",
    "rims",
    "top_k_mask",
]
