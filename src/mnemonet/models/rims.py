"""Recurrent Independent Mechanisms (RIMs; Goyal et al. 2019): n recurrent modules that compete to read the input.

At every step each module queries the input (and a null input of zeros) with attention; the k modules
that attend least to the null input are active. Active modules update their state with their own
LSTM or GRU (grouped weights: one batched matmul for all modules, see :mod:`mnemonet.models.grouped`),
then read from all modules through multi-head attention and add the result to their state. Inactive
modules keep their state bit for bit and get no gradient through that step's update.

Equations, per step t, module k, head h (numbers refer to :class:`RIMsCell`'s docstring):

(1) ``K_m = x_m W^k + b^k,  V_m = x_m W^v + b^v``  keys/values of each input source m (biases only with
                                                ``input_bias``); the null input is not projected: its key and
                                                value are 0, so even a zero input cannot tie with it
(2) ``Q_k = h_{t-1,k} W^q_k``                   one query per module (grouped weight)
(3) ``α_k = softmax([0, Q_k·K_1, ..., Q_k·K_M] / sqrt(d_k))`` attention over [null, inputs]
(4) ``A_k = dropout(Σ_m α_{k,m} V_m)``          the module's read (heads concatenated, 4 x module_size)
(5) ``S_t = top-k_k(-mean_h α_{k,null})``       the k modules that attend least to null are active
(6) ``h̃_k = D_k(A_k, h_{t-1,k})`` for k ∈ S_t;  ``h̃_k = h_{t-1,k}`` otherwise   (LSTM or GRU per module)
(7) ``h_k = h̃_k + O(C_k)``, ``C_k = softmax_j(Q^c_k·K^c_j / sqrt(d_c)) V^c_j`` for k ∈ S_t (communication,
    ``Q^c_k = h̃_k W^{cq}_k``, ``K^c_j = ĥ_j W^{ck}_j``, ``V^c_j = ĥ_j W^{cv}_j``); ``h_k = h_{t-1,k}`` otherwise.
    ``O(C) = sigmoid(C W^g + b^g) * tanh(dropout(C W^o + b^o))`` (shared maps, the official code's gated
    output; ``comm_output="linear"``: ``dropout(C W^o_k)`` per module). ``ĥ_j`` is what module j offers:
    its would-be update ``D_j(A_j, h_{t-1,j})`` with the gradient blocked when j is inactive, as the
    official code (``inactive_comm="proposed"``), or ``h̃_j`` (``inactive_comm="kept"``).

Defaults follow the official code (anirudh9119/RIMs, ``BlocksCore``); docs/results/rims.md lists every
difference that remains and the option that switches it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnemonet import kernels
from mnemonet._checks import check_choice, check_positive, check_tensor
from mnemonet.kernels.rims_sequence import RIMsOptions, dropout_noise, rims_sequence
from mnemonet.models.base import Cell
from mnemonet.models.grouped import GroupedGRUCell, GroupedLinear, GroupedLSTMCell, grouped_matmul
from mnemonet.models.recurrent import Recurrent, padding_mask
from mnemonet.models.registry import register

DYNAMICS = ("lstm", "gru")
SELECTIONS = ("null", "score")
COMM_OUTPUTS = ("gated_tanh", "linear")
INACTIVE_COMMS = ("proposed", "kept")
INITS = ("official", "torch")
OFFICIAL_STD = 0.01  # the official GroupLinearLayer draws its weights from 0.01 * N(0, 1)


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
    if keys.shape[1] == 1:  # one source (RIMs): a broadcast product is cheaper than einsum's batched matmul
        return (query * keys).sum(-1, keepdim=True) / math.sqrt(query.shape[-1])  # (B, n, H, 1)
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
    if values.shape[1] == 1:  # one source (RIMs): a broadcast product
        return (probs * values).flatten(2)  # (B, n, H, 1) * (B, 1, H, d_v) -> (B, n, H * d_v)
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
    att = _dropout(att, dropout, training)
    return att @ v  # (B, H, n, d_v)


def _dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout``, skipped (no op recorded) when it cannot change anything."""
    return F.dropout(x, p, training) if p > 0 and training else x


def offered_states(proposed: Tensor, active: Tensor) -> Tensor:
    """Eq. (7), what modules offer to communication in the official code: every module's would-be update.

    An inactive module's proposal is used as key and value, but no gradient flows back into it (the
    official ``blocked_grad``); its own state is not changed.

    Args:
        proposed: `[B, n, hs]` ``D_k(A_k, h_{t-1,k})`` for every module.
        active: `[B, n]` bool, the set S_t.

    Returns:
        `[B, n, hs]`, equal to ``proposed`` in value.
    """
    return torch.where(active.unsqueeze(-1), proposed, proposed.detach())


def gated_tanh(value: Tensor, gate: Tensor) -> Tensor:
    """Eq. (7), the official communication output: ``sigmoid(gate) * tanh(value)`` (same shapes)."""
    return torch.sigmoid(gate) * torch.tanh(value)


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
    4. Read (eq. 4): ``A_k = α_{k,x} V`` (``input_dropout`` drops entries of α in training, ``dropout``
       entries of A_k, as the official code).
    5. Selection (eq. 5): with ``selection="null"`` (the paper's rule) the k modules with the least
       attention on null, averaged over heads, are active; with ``selection="score"`` the k modules
       with the largest input score ``mean_h logsumexp_m(Q_k·K_m / sqrt(d_k))``. Both rules agree when
       H = 1. The selection is not differentiable; ties go to the lower index (from the zero initial
       state all queries are zero, so the first step selects modules 0..k-1).
    6. Dynamics (eq. 6): ``h̃_k, c̃_k = LSTM_k(A_k, (h_{t-1,k}, c_{t-1,k}))`` (or ``GRU_k``) for active
       modules; inactive modules keep ``h_{t-1,k}, c_{t-1,k}`` exactly (``torch.where``, so no gradient
       reaches their update).
    7. Communication (eq. 7): ``h_k = h̃_k + O(MHA(h̃_k; ĥ_1..n))`` for active modules only, with
       per-module query/key/value maps (``comm_query``, ``comm_key``, ``comm_value``; no biases) and
       ``comm_dropout`` on the attention probabilities. ``O`` is the official gated tanh
       ``sigmoid(comm_gate(C)) * tanh(dropout(comm_output(C)))`` with maps shared by all modules
       (``comm_output="gated_tanh"``) or a per-module linear map ``dropout(C W^o_k)``
       (``"linear"``). Keys and values come from every module: with ``inactive_comm="proposed"``
       (official) an inactive module offers its would-be update, gradient blocked; with ``"kept"`` its
       unchanged state. ``c`` is not changed by communication.

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
        input_value_size: d_v of the input attention (default ``4 * module_size // H``, so each module's
            dynamics reads ``H * d_v = 4 * module_size`` features, as the official code).
        comm_heads: H_c, heads of the communication attention.
        comm_key_size: key size of the communication attention (16 in the official RIMs, 32 in BRIMs).
        comm_value_size: value size of the communication attention (default ``comm_key_size``).
        input_dropout: dropout probability on the input attention probabilities.
        comm_dropout: dropout probability on the communication attention probabilities.
        selection: ``"null"`` or ``"score"`` (step 5).
        input_bias: learn biases in the input key/value maps (step 1). They act on the real input only
            (the null input's key and value stay 0), so a zero input no longer ties with the null.
        dropout: dropout probability on the outputs of both attentions (the read A_k and the
            communication output before tanh), 0.1 in the official code.
        comm_output: ``"gated_tanh"`` (official) or ``"linear"`` (step 7).
        inactive_comm: ``"proposed"`` (official) or ``"kept"`` (step 7).
        init: ``"official"``: query/key/value maps ~ N(0, 0.01²) and the dynamics ~ U(±1/sqrt(n *
            module_size)) as the official dense-then-blocked LSTM; ``"torch"``: ``torch.nn`` defaults
            per module (U(±1/sqrt(fan_in)), dynamics U(±1/sqrt(module_size))).
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
        comm_key_size: int = 16,
        comm_value_size: int | None = None,
        input_dropout: float = 0.0,
        comm_dropout: float = 0.0,
        selection: str = "null",
        input_bias: bool = False,
        dropout: float = 0.1,
        comm_output: str = "gated_tanh",
        inactive_comm: str = "proposed",
        init: str = "official",
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
        if input_value_size is None:
            input_value_size = max(1, 4 * module_size // input_heads)
        comm_value_size = comm_key_size if comm_value_size is None else comm_value_size
        check_positive(input_value_size, "input_value_size")
        check_positive(comm_value_size, "comm_value_size")
        if k > num_modules:
            raise ValueError(f"k: expected an integer in [1, num_modules={num_modules}], got {k}")
        check_choice(dynamics, "dynamics", DYNAMICS)
        check_choice(selection, "selection", SELECTIONS)
        check_choice(comm_output, "comm_output", COMM_OUTPUTS)
        check_choice(inactive_comm, "inactive_comm", INACTIVE_COMMS)
        check_choice(init, "init", INITS)
        for name, p in [("input_dropout", input_dropout), ("comm_dropout", comm_dropout), ("dropout", dropout)]:
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
        self.input_bias = input_bias
        self.dropout = dropout
        self.comm_output_kind = comm_output
        self.inactive_comm = inactive_comm
        self.init = init

        n, hs = num_modules, module_size
        # eq. (1): shared input maps; the null input is never projected, so its key and value stay zero
        self.input_key = nn.Linear(input_size, input_heads * input_key_size, bias=input_bias)
        self.input_value = nn.Linear(input_size, input_heads * input_value_size, bias=input_bias)
        # eq. (2): per-module query maps W^q_k
        self.input_query = GroupedLinear(n, hs, input_heads * input_key_size, bias=False)
        # eq. (6): per-module dynamics D_k
        cell_cls = GroupedLSTMCell if dynamics == "lstm" else GroupedGRUCell
        self.dynamics = cell_cls(n, input_heads * input_value_size, hs)
        # eq. (7): per-module communication maps
        self.comm_query = GroupedLinear(n, hs, comm_heads * comm_key_size, bias=False)
        self.comm_key = GroupedLinear(n, hs, comm_heads * comm_key_size, bias=False)
        self.comm_value = GroupedLinear(n, hs, comm_heads * comm_value_size, bias=False)
        if comm_output == "gated_tanh":  # one output and one gate map shared by all modules, with biases
            self.comm_output = nn.Linear(comm_heads * comm_value_size, hs)
            self.comm_gate = nn.Linear(comm_heads * comm_value_size, hs)
        else:
            self.comm_output = GroupedLinear(n, comm_heads * comm_value_size, hs, bias=False)
        if init == "official":
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as ``init`` says (``"torch"``: every submodule's own ``reset_parameters``)."""
        for module in self.children():
            module.reset_parameters()
        if self.init != "official":
            return
        with torch.no_grad():
            for module in (self.input_key, self.input_value, self.input_query, self.comm_query, self.comm_key):
                module.weight.normal_(0.0, OFFICIAL_STD)
            self.comm_value.weight.normal_(0.0, OFFICIAL_STD)
            for p in (self.input_key.bias, self.input_value.bias):
                if p is not None:
                    p.normal_(0.0, OFFICIAL_STD)
            bound = 1.0 / math.sqrt(self.num_modules * self.module_size)  # nn.LSTMCell over all modules
            for p in self.dynamics.parameters():
                p.uniform_(-bound, bound)

    def comm_qkv_weight(self) -> Tensor:
        """``[W^{cq} | W^{ck} | W^{cv}]`` per module: `[n, module_size, H_c * (2 d_c + d_v)]` (eq. 7)."""
        return torch.cat([self.comm_query.weight, self.comm_key.weight, self.comm_value.weight], -1)

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
        if self.input_bias:
            s += ", input_bias=True"
        if self.dropout != 0.1:
            s += f", dropout={self.dropout}"
        for name, value, default in [
            ("comm_output", self.comm_output_kind, "gated_tanh"),
            ("inactive_comm", self.inactive_comm, "proposed"),
            ("init", self.init, "official"),
        ]:
            if value != default:
                s += f", {name}={value!r}"
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
        self,
        keys: Tensor,
        values: Tensor,
        state: RIMsState | RIMsGRUState,
        noise: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[RIMsStep, RIMsState | RIMsGRUState]:
        """Eqs. (2)-(7) given the keys and values of M input sources (M = 1 for RIMs; BRIMs adds top-down).

        Args:
            keys: `[B, M, H, d_k]` keys of the input sources (eq. 1).
            values: `[B, M, H, d_v]` values of the input sources.
            state: the previous state, leaves `[B, n, module_size]`.
            noise: the ``dropout`` noise of the read `[B, n, H d_v]` and of the output `[B, n, hs]`
                (:meth:`dropout_noise`), or None to draw it here with ``F.dropout`` (in training).

        Returns:
            ``(RIMsStep(y, active, null_attention), next_state)``.
        """
        h = state.h  # (B, n, hs)
        B, n = h.shape[0], self.num_modules
        # eq. (2): Q_k = h_{t-1,k} W^q_k
        query = self.input_query(h).unflatten(-1, (self.input_heads, self.input_key_size))  # (B, n, H, d_k)
        # eq. (3): attention over [null, inputs]
        scores = input_scores(query, keys)  # (B, n, H, M)
        if scores.shape[-1] == 1:  # softmax([0, s]) = [1 - sigmoid(s), sigmoid(s)]: no concatenation
            p_real = torch.sigmoid(scores)  # (B, n, H, 1)
            null_attention = 1 - p_real.detach()[..., 0].mean(-1)  # (B, n)
        else:
            probs = input_attention(scores)  # (B, n, H, 1 + M)
            p_real = probs[..., 1:]  # (B, n, H, M)
            null_attention = probs[..., 0].mean(-1).detach()  # (B, n)
        # eq. (5): the active set S_t
        if self.selection == "null":
            active = top_k_mask(-null_attention, self.k)
        else:
            active = top_k_mask(torch.logsumexp(scores.detach(), -1).mean(-1), self.k)
        # eq. (4): the read A_k, input dropout on the attention probabilities
        p_in = _dropout(p_real, self.input_dropout, self.training)  # (B, n, H, M)
        read = attention_read(p_in, values)  # (B, n, H * d_v)
        read = _dropout(read, self.dropout, self.training) if noise is None else read * noise[0]
        # eq. (6): dynamics for the active modules, the old state for the others
        m = active.unsqueeze(-1)  # (B, n, 1)
        if isinstance(state, RIMsState):
            h_dyn, c_dyn = self.dynamics(read, h, state.c)
            c_new = torch.where(m, c_dyn, state.c)
        else:
            h_dyn = self.dynamics(read, h)
        h_tilde = torch.where(m, h_dyn, h)  # (B, n, hs)
        # eq. (7): communication among modules, residual on the active ones
        offered = offered_states(h_dyn, active) if self.inactive_comm == "proposed" else h_tilde  # (B, n, hs)
        Hc, dk, dv = self.comm_heads, self.comm_key_size, self.comm_value_size
        # Q, K and V in one grouped matmul of what modules offer: an active module offers h̃_k, so its query is
        # Q^c_k = h̃_k W^{cq}_k; an inactive module's query result is discarded by the final where (no gradient)
        qkv = grouped_matmul(offered, self.comm_qkv_weight())  # (B, n, Hc * (2 dk + dv))
        q, k, v = qkv.split([Hc * dk, Hc * dk, Hc * dv], -1)
        q = q.unflatten(-1, (Hc, dk)).transpose(1, 2)  # (B, Hc, n, dk)
        k = k.unflatten(-1, (Hc, dk)).transpose(1, 2)  # (B, Hc, n, dk)
        v = v.unflatten(-1, (Hc, dv)).transpose(1, 2)  # (B, Hc, n, dv)
        comm = communication_attention(q, k, v, self.comm_dropout, self.training)  # (B, Hc, n, dv)
        comm = comm.transpose(1, 2).reshape(B, n, Hc * dv)  # (B, n, Hc * dv)
        if self.comm_output_kind == "gated_tanh":  # output and gate in one matmul
            weight = torch.cat([self.comm_output.weight, self.comm_gate.weight], 0)  # (2 hs, Hc * dv)
            bias = torch.cat([self.comm_output.bias, self.comm_gate.bias], 0)  # (2 hs,)
            value, gate = F.linear(comm, weight, bias).chunk(2, -1)  # (B, n, hs) each
            value = _dropout(value, self.dropout, self.training) if noise is None else value * noise[1]
            out = gated_tanh(value, gate)  # (B, n, hs)
        else:
            out = self.comm_output(comm)  # (B, n, hs)
            out = _dropout(out, self.dropout, self.training) if noise is None else out * noise[1]
        h_new = torch.where(m, h_tilde + out, h)  # (B, n, hs)
        new_state = RIMsState(h_new, c_new) if isinstance(state, RIMsState) else RIMsGRUState(h_new)
        return RIMsStep(h_new.flatten(1), active, null_attention), new_state  # y: (B, n * hs)

    def dropout_noise(self, batch_size: int, steps: int, like: Tensor) -> tuple[Tensor, Tensor] | None:
        """The ``dropout`` noise of a whole sequence, or None (evaluation, or ``dropout = 0``).

        One draw (:func:`~mnemonet.kernels.rims_sequence.dropout_noise`) for all steps, read noise then output
        noise, so the step loop and the sequence kernel see the same masks for the same seed.

        Returns:
            (read noise `[T, B, n, H d_v]`, output noise `[T, B, n, module_size]`), entries 0 or 1/(1 − dropout).
        """
        if not (self.training and self.dropout > 0):
            return None
        T, B, n = steps, batch_size, self.num_modules
        shapes = [(T, B, n, self.input_heads * self.input_value_size), (T, B, n, self.module_size)]
        read, value = dropout_noise(shapes, self.dropout, like)
        return read, value

    def step_noise(self, batch_size: int, steps: int, like: Tensor) -> list[tuple[Tensor, Tensor] | None]:
        """:meth:`dropout_noise` split by step: T pairs (read `[B, n, H d_v]`, output `[B, n, module_size]`), or T
        Nones without dropout."""
        noise = self.dropout_noise(batch_size, steps, like)
        return [None] * steps if noise is None else list(zip(noise[0].unbind(0), noise[1].unbind(0), strict=True))

    def prepare(self, x: Tensor, mask: Tensor | None = None) -> list[tuple[Tensor, Tensor, Any]]:
        """Eq. (1) for all T steps in one matmul: T triples of keys `[B, 1, H, d_k]`, values `[B, 1, H, d_v]`
        and the step's dropout noise (:meth:`step_noise`; None without dropout)."""
        keys, values = self.project_inputs(x)  # (B, T, H, d)
        steps = self.step_noise(x.shape[0], x.shape[1], keys)
        # one tensor per step (unbind, not keys[:, t]: slicing would make backward fill a [B, T, ...] zero
        # tensor at every step)
        return list(zip(keys.unsqueeze(2).unbind(1), values.unsqueeze(2).unbind(1), steps, strict=True))  # M = 1

    def uses_sequence_kernel(self) -> bool:
        """Whether :meth:`sequence` runs :mod:`mnemonet.kernels.rims_sequence` (kernels on, its configuration).

        The kernel covers LSTM dynamics, one input head, the gated-tanh output and no dropout on attention
        probabilities (``input_dropout = comm_dropout = 0``); ``dropout`` on the outputs is covered.
        """
        return (
            kernels.is_enabled()
            and self.dynamics_kind == "lstm"
            and self.input_heads == 1
            and self.comm_output_kind == "gated_tanh"
            and not (self.training and (self.input_dropout or self.comm_dropout))
        )

    def sequence(self, x: Tensor, state, lengths: Tensor | None):
        """Eqs. (1)-(7) for the whole sequence in one kernel (:class:`~mnemonet.kernels.rims_sequence.RIMsSequence`).

        Computes what ``prepare`` + ``step`` compute. With one input head the read is ``A_k = α_k (V ⊙ δ_k)``
        (δ_k: the read's dropout noise), so the dynamics' input term ``A_k W_ih[k] = α_k ((V ⊙ δ_k) W_ih[k])``
        is formed for all steps in one matmul before the loop. Dropout noise is drawn as ``prepare`` draws it for
        the step loop (:meth:`dropout_noise`), so a seeded run matches the step path.

        Args:
            x: `[B, T, input_size]` with padded steps zeroed.
            state: :class:`RIMsState`, leaves `[B, n, module_size]`.
            lengths: `[B]` or None.

        Returns:
            ``(y [B, T, n * module_size], state)``, or None where the kernel does not apply.
        """
        if not self.uses_sequence_kernel():
            return None
        T = x.shape[1]
        keys, values = self.project_inputs(x)  # (B, T, 1, d_k), (B, T, 1, d_v)
        keys = keys[:, :, 0].transpose(0, 1) / math.sqrt(self.input_key_size)  # (T, B, d_k)
        values = values[:, :, 0].transpose(0, 1)  # (T, B, d_v)
        Hc, dc, dv = self.comm_heads, self.comm_key_size, self.comm_value_size
        w_qkv = torch.cat(  # per head [q k v] columns: (n, hs, Hc (2 dc + dv))
            [
                self.comm_query.weight.unflatten(-1, (Hc, dc)),
                self.comm_key.weight.unflatten(-1, (Hc, dc)),
                self.comm_value.weight.unflatten(-1, (Hc, dv)),
            ],
            -1,
        ).flatten(-2)
        weights = (
            self.dynamics.weight_ih,
            torch.cat([self.dynamics.weight_hh, self.input_query.weight], -1),  # h [W_hh | W^q]
            self.dynamics.bias_ih + self.dynamics.bias_hh,
            w_qkv,
            torch.cat([self.comm_output.weight, self.comm_gate.weight], 0),
            torch.cat([self.comm_output.bias, self.comm_gate.bias], 0),
        )
        options = RIMsOptions(
            self.k,
            Hc,
            dc,
            dv,
            by_score=self.selection == "score",
            proposed=self.inactive_comm == "proposed",
        )
        mask = padding_mask(lengths, T, x.device)  # (B, T)
        real = None if mask is None else mask.t().contiguous()  # (T, B)
        noise = self.dropout_noise(x.shape[0], T, keys)  # as the step loop draws it (prepare)
        y, h, c, _ = rims_sequence(keys, values, state.h, state.c, real, noise, weights, options)
        if mask is not None:
            y = torch.where(mask.unsqueeze(-1), y, y.new_zeros(()))  # padded steps output zero
        return y, RIMsState(h, c)

    def step(self, p_t, state, t=0, mask=None):
        """Eqs. (2)-(7) from the prepared keys and values of step t."""
        out, new = self.step_projected(p_t[0], p_t[1], state, p_t[2])
        return out.y, new

    def trace_step(self, p_t, state, t=0, mask=None):
        """``step`` plus ``active``: `[B, n]` bool, the modules selected at step t (eq. 5)."""
        out, new = self.step_projected(p_t[0], p_t[1], state, p_t[2])
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
    comm_key_size: int = 16,
    comm_value_size: int | None = None,
    input_dropout: float = 0.0,
    comm_dropout: float = 0.0,
    selection: str = "null",
    input_bias: bool = False,
    dropout: float = 0.1,
    comm_output: str = "gated_tanh",
    inactive_comm: str = "proposed",
    init: str = "official",
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
        input_bias=input_bias,
        dropout=dropout,
        comm_output=comm_output,
        inactive_comm=inactive_comm,
        init=init,
    )
    return Recurrent(cell, batch_first=batch_first)


__all__ = [
    "RIMsCell",
    "RIMsGRUState",
    "RIMsState",
    "RIMsStep",
    "attention_read",
    "communication_attention",
    "gated_tanh",
    "input_attention",
    "input_scores",
    "offered_states",
    "rims",
    "top_k_mask",
]
