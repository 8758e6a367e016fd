"""The Differentiable Neural Computer cell (Graves et al., Nature 2016) and its ``build("dnc", ...)`` factory.

One step: the controller reads [x_t; r_{t−1}] (the input and the previous step's read vectors), its output
h_t drives the memory through the interface vector, and the output is y_t = W_y [h_t; r_t] with the new
read vectors, so the output size is independent of the input size. The controller is any mnemonet cell
(LSTM by default) or stacked model; ``Recurrent`` owns the time loop, ``batch_first``, padding and
trajectories.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnemonet import kernels
from mnemonet._checks import check_choice, check_positive
from mnemonet.kernels.dnc_sequence import DNCSequence
from mnemonet.kernels.lstm_step import LSTMStep
from mnemonet.kernels.time_shared import TimeShared
from mnemonet.models.base import Cell, RecurrentModel
from mnemonet.models.cells import GRUCell, LSTMCell, LSTMState, RNNCell
from mnemonet.models.dnc.access import AccessInfo, AccessState, LinkState, MemoryAccess
from mnemonet.models.dnc.conventions import resolve_reference
from mnemonet.models.dnc.sparse import DELTA, SparseMemoryAccess
from mnemonet.models.recurrent import Recurrent, padding_mask, zero_padding
from mnemonet.models.registry import register
from mnemonet.models.state import tree_map

State = Any
CONTROLLERS = {"lstm": LSTMCell, "gru": GRUCell, "rnn": RNNCell}
MEMORIES = ("dense", "sam", "sdnc")


class _KernelInput(NamedTuple):
    """A step's input for the ``"step"`` kernel: W_ih^(x) x_t + b `[B, 4H]` and the sequence's shared weights."""

    pre: Tensor
    recurrent: TimeShared
    projection: TimeShared


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


class DNCState(NamedTuple):
    """State of a DNC: ``controller`` (the controller's own state), ``access`` (:class:`AccessState`: memory,
    usage, link, precedence, read and write weightings) and ``read_vectors`` r_t `[B, R, W]`."""

    controller: State
    access: AccessState
    read_vectors: Tensor


class DNCCell(Cell):
    """One DNC step: ``(x_t [B, input_size], DNCState) -> (y_t [B, output_size], DNCState)``.

    Args:
        input_size: size of x_t.
        output_size: size of y_t (any; not tied to the input size).
        hidden_size: the controller's size when ``controller`` is a name; with a controller instance it
            may be None, else it must equal the controller's output size.
        memory_size: N, the number of memory slots.
        word_size: W, the size of each slot.
        num_reads: R read heads.
        num_writes: write heads (the paper uses 1).
        controller: ``"lstm"`` (default), ``"gru"``, ``"rnn"``, or a mnemonet ``Cell`` / ``RecurrentModel``
            whose input size is ``input_size + num_reads * word_size``.
        key_masking: masked content-based addressing (Csordás & Schmidhuber 2019).
        deallocation: free gates also erase the freed slots' content (Csordás & Schmidhuber 2019).
        link_sharpness: sharpness control of the forward/backward weightings (Csordás & Schmidhuber 2019).
        link_top_k: K: keep the K largest entries per row of the dense link matrix, memory N·K instead of N²
            (exact for K ≥ N; not the sparse link of Rae et al. 2016, which sparsifies the weightings).
        reference: ``"paper"`` (default) or ``"deepmind"``: the defaults of the four choices below, where the
            paper is silent (see :mod:`.conventions` and docs/dnc_differences.md).
        usage_write_gradient: gradient from u_t into w^w_{t−1} (paper: True; deepmind/dnc stops it).
        outer_eps: ε on the norm product of the cosine similarity (deepmind/dnc).
        strength: key-strength map, ``"oneplus"`` (paper) or ``"softplus"`` (deepmind/dnc).
        clip_value: clip the controller's output and state and the cell's output y_t to ±clip_value (deepmind/dnc's
            ``clip_value``), or None. Each of these four is None by default: the reference's value.
        memory: ``"dense"`` (the DNC's memory, default) or ``"sam"``: the Sparse Access Memory of Rae et al.
            (2016), K-sparse reads and writes with least-recently-used allocation (:mod:`.sparse`,
            docs/dnc_sam.md); ``"sdnc"``: SAM with the DNC's temporal link built from K-sparse weightings
            (Rae et al.'s sparse DNC, :mod:`.sparse_temporal`). Neither takes Csordás options, ``link_top_k``
            or more than one write head.
        sparse_k: K, the non-zeros of each read weighting with ``memory="sam"`` or ``"sdnc"``.
        sparse_delta: δ, the access weight that counts as a use for the least-recently-used rule.
        sparse_link_capacity: C, the entries the SDNC's link keeps (None: 16·K²).

    The fused kernels cover the paper's choices; any other choice runs the readable equations.

    ``model.trace(x)`` records the :class:`AccessInfo` fields of every step (``trace_step``).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int | None,
        memory_size: int,
        word_size: int,
        num_reads: int,
        num_writes: int = 1,
        controller: str | Cell | RecurrentModel = "lstm",
        key_masking: bool = False,
        deallocation: bool = False,
        link_sharpness: bool = False,
        link_top_k: int | None = None,
        reference: str = "paper",
        usage_write_gradient: bool | None = None,
        outer_eps: bool | None = None,
        strength: str | None = None,
        clip_value: float | None = None,
        memory: str = "dense",
        sparse_k: int = 4,
        sparse_delta: float = DELTA,
        sparse_link_capacity: int | None = None,
    ) -> None:
        super().__init__()
        check_choice(memory, "memory", MEMORIES)
        if memory != "dense":
            unused = {"num_writes": num_writes != 1, "link_top_k": link_top_k is not None, "key_masking": key_masking,
                      "deallocation": deallocation, "link_sharpness": link_sharpness}  # fmt: skip
            for name, bad in unused.items():
                if bad:
                    raise ValueError(f"{name}: not an option of memory={memory!r} (leave it at its default)")
        self.memory = memory
        choices = resolve_reference(
            reference,
            usage_write_gradient=usage_write_gradient,
            outer_eps=outer_eps,
            strength=strength,
            clip_value=clip_value,
        )
        self.reference = reference
        self.clip_value = choices.pop("clip_value")
        if self.clip_value is not None and not (math.isfinite(self.clip_value) and self.clip_value > 0):
            raise ValueError(f"clip_value: expected a positive number or None, got {self.clip_value}")
        check_positive(input_size, "input_size")
        check_positive(output_size, "output_size")
        check_positive(word_size, "word_size")
        check_positive(num_reads, "num_reads")
        ctrl_in = input_size + num_reads * word_size
        if isinstance(controller, str):
            check_choice(controller, "controller", list(CONTROLLERS))
            check_positive(hidden_size, "hidden_size")
            controller = CONTROLLERS[controller](ctrl_in, hidden_size)
        elif isinstance(controller, (Cell, RecurrentModel)):
            if controller.input_size != ctrl_in:
                raise ValueError(
                    f"controller: expected input_size {ctrl_in} (input_size + num_reads * word_size = "
                    f"{input_size} + {num_reads} * {word_size}), got {controller.input_size}"
                )
            if hidden_size is not None and hidden_size != controller.output_size:
                raise ValueError(
                    f"hidden_size: expected None or the controller's output size {controller.output_size}, "
                    f"got {hidden_size}"
                )
        else:
            raise ValueError(
                f"controller: expected 'lstm', 'gru', 'rnn' or a mnemonet Cell, got {type(controller).__name__}"
            )
        self.input_size = input_size
        self.output_size = output_size
        self.controller = controller
        self.hidden_size = controller.output_size
        if memory != "dense":
            self.access: MemoryAccess | SparseMemoryAccess = SparseMemoryAccess(
                self.hidden_size, memory_size, word_size, num_reads, sparse_k, sparse_delta,
                outer_eps=choices["outer_eps"], strength=choices["strength"], link=memory == "sdnc",
                link_capacity=sparse_link_capacity,
            )  # fmt: skip
        else:
            self.access = MemoryAccess(
                self.hidden_size,
                memory_size,
                word_size,
                num_reads,
                num_writes,
                key_masking=key_masking,
                deallocation=deallocation,
                link_sharpness=link_sharpness,
                link_top_k=link_top_k,
                **choices,
            )
        self.output = nn.Linear(self.hidden_size + num_reads * word_size, output_size)  # W_y [h_t; r_t]

    def extra_repr(self) -> str:
        parts = [f"input_size={self.input_size}, output_size={self.output_size}"]
        if self.reference != "paper":
            parts.append(f"reference={self.reference!r}")
        if self.clip_value is not None:
            parts.append(f"clip_value={self.clip_value}")
        if self.memory != "dense":
            parts.append(f"memory={self.memory!r}")
        return ", ".join(parts)

    def _clip(self, x: Tensor) -> Tensor:
        """x clipped to ±clip_value (deepmind/dnc), or x itself without clipping."""
        return x if self.clip_value is None else x.clamp(-self.clip_value, self.clip_value)

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> DNCState:
        """Zero controller state, empty memory and zero read vectors for ``batch_size`` sequences."""
        ref = self.output.weight
        device = device or ref.device
        dtype = dtype or ref.dtype
        a = self.access
        return DNCState(
            self.controller.initial_state(batch_size, device=device, dtype=dtype),
            a.initial_state(batch_size, device=device, dtype=dtype),
            torch.zeros(batch_size, a.num_reads, a.word_size, device=device, dtype=dtype),
        )

    def kernel(self) -> str | None:
        """Which kernel runs this cell's sequences (the one dispatch; None: the readable equations).

        ``"sequence"``: the paper's configuration (a plain ``LSTMCell`` controller, ``access.uses_fused_step``)
        runs a whole sequence as one autograd node (``kernels.dnc_sequence``); ``"step"``: each step's LSTM is
        one fused node (``kernels.lstm_step``) and the interface and recurrent weights get their gradient once
        per sequence (``kernels.time_shared``); None with kernels disabled or another controller (the memory
        step itself may still be fused, see ``MemoryAccess``). ``type(...) is``: a subclass may change the
        equations that the kernels hard-code.
        """
        if not kernels.is_enabled() or type(self.controller) is not LSTMCell or self.clip_value is not None:
            return None
        return "sequence" if self.access.uses_fused_step else "step"

    def prepare(self, x: Tensor, mask: Tensor | None = None) -> Sequence[Any]:
        """The steps' inputs: x_t, or with the ``"step"`` kernel W_ih^(x) x_t + b for all t in one matmul."""
        if self.kernel() is None:
            return x.unbind(1)  # T × (B, I)
        w_x, bias, w_hr = lstm_weights(self.controller, self.input_size)
        pre = F.linear(x, w_x, bias).unbind(1)  # W_ih^(x) x_t + b for all t, T × (B, 4H)
        recurrent = TimeShared(w_hr)  # [W_hh, W_ih^(r)], gradient once per sequence
        projection = TimeShared(self.access.interface.weight)  # ξ_t = W_ξ h_t + b, dW_ξ once per sequence
        return [_KernelInput(p, recurrent, projection) for p in pre]

    def _step(
        self, p_t: Any, state: DNCState, t: int, mask: Tensor | None, with_info: bool, tape: Any = None
    ) -> tuple[Tensor, DNCState, AccessInfo | None]:
        """Controller, memory and output for one step from a prepared input."""
        B = state.read_vectors.shape[0]
        if isinstance(p_t, _KernelInput):
            ctrl = state.controller
            w = p_t.recurrent
            h, c = LSTMStep.apply(p_t.pre, state.read_vectors, ctrl.h, ctrl.c, w.weight, w.record)
            ctrl_state, projection = LSTMState(h, c), p_t.projection
        else:
            ctrl_in = torch.cat([p_t, state.read_vectors.reshape(B, -1)], dim=-1)  # [x_t; r_{t−1}], (B, I + R·W)
            if isinstance(self.controller, RecurrentModel):
                h, ctrl_state = self.controller.step(ctrl_in, state.controller, t=t, mask=mask)
            else:
                h, ctrl_state = self.controller(ctrl_in, state.controller, t=t, mask=mask)
            projection = None
        if self.clip_value is not None:  # deepmind/dnc clips the controller's output and state
            h, ctrl_state = self._clip(h), tree_map(self._clip, ctrl_state)
        kw = {} if tape is None else {"tape": tape}
        read_vectors, access, info = self.access(h, state.access, with_info=with_info, projection=projection, **kw)
        y = self._clip(self.output(torch.cat([h, read_vectors.reshape(B, -1)], dim=-1)))  # W_y [h_t; r_t]
        return y, DNCState(ctrl_state, access, read_vectors), info

    def step(self, p_t: Any, state: DNCState, t: int = 0, mask: Tensor | None = None) -> tuple[Tensor, DNCState]:
        """One step from ``prepare``'s item t."""
        y, state, _ = self._step(p_t, state, t, mask, with_info=False)
        return y, state

    def trace_step(self, p_t, state, t=0, mask=None):
        """``step`` plus the step's :class:`AccessInfo` fields (write/read weightings, usage, gates, modes)."""
        y, state, info = self._step(p_t, state, t, mask, with_info=True)
        return y, state, info._asdict()

    def forward(self, x_t: Tensor, state: DNCState, t: int = 0, mask: Tensor | None = None) -> tuple[Tensor, DNCState]:
        """One step (see the class docstring): `[B, input_size]` -> `[B, output_size]`."""
        y, state, _ = self._step(x_t, state, t, mask, with_info=False)
        return y, state

    def sequence(self, x: Tensor, state: DNCState, lengths: Tensor | None) -> tuple[Tensor, DNCState] | None:
        """The ``"sequence"`` kernel over `[B, T, input_size]` (see :meth:`kernel`), else None.

        With ``memory="sam"`` or ``"sdnc"`` (full-length sequences): the steps' memory written in place
        (``kernels.sparse_memory``).
        """
        if self.memory != "dense":
            return self._sparse_sequence(x, state) if lengths is None else None
        return self._whole_sequence(x, state, lengths) if self.kernel() == "sequence" else None

    def _sparse_sequence(self, x: Tensor, state: DNCState) -> tuple[Tensor, DNCState]:
        """``sequence`` for SAM: the step loop with one in-place memory for the whole sequence."""
        ys = []
        tape, access = self.access.open(state.access)
        state = state._replace(access=access)
        for t, p_t in enumerate(self.prepare(x)):
            y, state, _ = self._step(p_t, state, t, None, with_info=False, tape=tape)
            ys.append(y)
        return torch.stack(ys, 1), state._replace(access=self.access.close(tape, state.access))  # (B, T, O)

    def _whole_sequence(self, x: Tensor, state: DNCState, lengths: Tensor | None) -> tuple[Tensor, DNCState]:
        """``sequence`` for an LSTM controller and the paper's memory: all steps as one node (``sequence.py``)."""
        T = x.shape[1]
        w_x, bias, w_hr = lstm_weights(self.controller, self.input_size)  # w_hr multiplies HR[t] = [h; r]
        pre = F.linear(x.transpose(0, 1), w_x, bias)  # W_ih^(x) x_t + b, (T, B, 4H)
        a, link = state.access, state.access.link
        last = None if lengths is None else (lengths - 1).to(torch.int64)
        if last is not None and bool((last == T - 1).all()):
            last = None
        iface = self.access.interface
        bias_xi = iface.bias if iface.bias is not None else w_x.new_zeros(iface.weight.shape[0])
        inputs = (
            pre, w_hr, iface.weight, bias_xi, state.controller.h, state.controller.c, state.read_vectors,
            a.memory, a.usage, link.link[:, 0], link.precedence[:, 0], a.read_weights, a.write_weights[:, 0],
        )  # fmt: skip
        keep = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
        HR, h, c, r, M, u, L, p, wr, ww = DNCSequence.apply(
            *inputs, last, (self.access.num_reads, self.access.word_size), keep
        )
        # W_y [h_t; r_t] for all rows of HR, then drop row 0 (the initial state): (B, T, O); slicing the small
        # result, not HR, keeps autograd from building a zero-padded gradient of HR
        y = self.output(HR)[1:].transpose(0, 1)
        y = zero_padding(y, padding_mask(lengths, T, x.device))  # (B, T, O)
        access = AccessState(M, u, LinkState(L.unsqueeze(1), p.unsqueeze(1)), wr, ww.unsqueeze(1))
        return y, DNCState(LSTMState(h, c), access, r)


@register("dnc")
def build_dnc(
    input_size: int,
    output_size: int,
    hidden_size: int | None,
    memory_size: int,
    word_size: int,
    num_reads: int,
    num_writes: int = 1,
    controller: str | Cell | RecurrentModel = "lstm",
    batch_first: bool = True,
    key_masking: bool = False,
    deallocation: bool = False,
    link_sharpness: bool = False,
    link_top_k: int | None = None,
    reference: str = "paper",
    usage_write_gradient: bool | None = None,
    outer_eps: bool | None = None,
    strength: str | None = None,
    clip_value: float | None = None,
    memory: str = "dense",
    sparse_k: int = 4,
    sparse_delta: float = DELTA,
    sparse_link_capacity: int | None = None,
) -> Recurrent:
    """A DNC over sequences: ``Recurrent(DNCCell(...), batch_first=batch_first)``.

    Example:
        >>> import torch
        >>> model = build_dnc(input_size=6, output_size=4, hidden_size=32, memory_size=16,
        ...                   word_size=8, num_reads=2)
        >>> y, state = model(torch.zeros(3, 5, 6))
        >>> tuple(y.shape), tuple(state.access.memory.shape)
        ((3, 5, 4), (3, 16, 8))

    Args: see :class:`DNCCell`; ``batch_first`` sets the input/output layout.
    """
    cell = DNCCell(
        input_size,
        output_size,
        hidden_size,
        memory_size,
        word_size,
        num_reads,
        num_writes,
        controller,
        key_masking=key_masking,
        deallocation=deallocation,
        link_sharpness=link_sharpness,
        link_top_k=link_top_k,
        reference=reference,
        usage_write_gradient=usage_write_gradient,
        outer_eps=outer_eps,
        strength=strength,
        clip_value=clip_value,
        memory=memory,
        sparse_k=sparse_k,
        sparse_delta=sparse_delta,
        sparse_link_capacity=sparse_link_capacity,
    )
    return Recurrent(cell, batch_first=batch_first)
