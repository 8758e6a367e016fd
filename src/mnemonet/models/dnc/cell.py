"""The Differentiable Neural Computer cell (Graves et al., Nature 2016) and its ``build("dnc", ...)`` factory.

One step: the controller reads [x_t; r_{t−1}] (the input and the previous step's read vectors), its output
h_t drives the memory through the interface vector, and the output is y_t = W_y [h_t; r_t] with the new
read vectors, so the output size is independent of the input size. The controller is any mnemonet cell
(LSTM by default) or stacked model; ``Recurrent`` owns the time loop, ``batch_first``, padding and
trajectories.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnemonet._checks import check_choice, check_positive
from mnemonet.models import state as st
from mnemonet.models.base import Cell, RecurrentModel
from mnemonet.models.cells import GRUCell, LSTMCell, LSTMState, RNNCell
from mnemonet.models.dnc.access import AccessInfo, AccessState, LinkState, MemoryAccess
from mnemonet.models.dnc.deferred import TimeShared
from mnemonet.models.dnc.fused_lstm import LSTMStep, lstm_weights
from mnemonet.models.dnc.sequence import DNCSequence
from mnemonet.models.recurrent import Recurrent, padding_mask
from mnemonet.models.registry import register

State = Any
CONTROLLERS = {"lstm": LSTMCell, "gru": GRUCell, "rnn": RNNCell}


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
        sparse_links: K: keep the K largest entries per row of the link matrix, memory N·K instead of N².

    Attributes:
        tracing: None, or a list to which every step appends its :class:`AccessInfo` (see ``run_with_trace``).
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
        sparse_links: int | None = None,
    ) -> None:
        super().__init__()
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
        self.access = MemoryAccess(
            self.hidden_size,
            memory_size,
            word_size,
            num_reads,
            num_writes,
            key_masking=key_masking,
            deallocation=deallocation,
            link_sharpness=link_sharpness,
            sparse_links=sparse_links,
        )
        self.output = nn.Linear(self.hidden_size + num_reads * word_size, output_size)  # W_y [h_t; r_t]
        self.tracing: list[AccessInfo] | None = None

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, output_size={self.output_size}"

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

    def _core(
        self, x_t: Tensor, state: DNCState, t: int, mask: Tensor | None, projection: TimeShared | None = None
    ) -> tuple[Tensor, DNCState]:
        """Controller and memory for one step; returns h_t `[B, H]` and the new state (r_t inside)."""
        B = x_t.shape[0]
        ctrl_in = torch.cat([x_t, state.read_vectors.reshape(B, -1)], dim=-1)  # [x_t; r_{t−1}], (B, I + R·W)
        if isinstance(self.controller, RecurrentModel):
            h, ctrl_state = self.controller.step(ctrl_in, state.controller, t=t, mask=mask)
        else:
            h, ctrl_state = self.controller(ctrl_in, state.controller, t=t, mask=mask)
        read_vectors, access, info = self.access(
            h, state.access, with_info=self.tracing is not None, projection=projection
        )
        if self.tracing is not None and info is not None:
            self.tracing.append(info)
        return h, DNCState(ctrl_state, access, read_vectors)

    def forward(self, x_t: Tensor, state: DNCState, t: int = 0, mask: Tensor | None = None) -> tuple[Tensor, DNCState]:
        """One step (see the class docstring): `[B, input_size]` -> `[B, output_size]`."""
        h, state = self._core(x_t, state, t, mask)
        y = self.output(torch.cat([h, state.read_vectors.reshape(h.shape[0], -1)], dim=-1))  # W_y [h_t; r_t]
        return y, state

    def sequence(self, x: Tensor, state: DNCState, lengths: Tensor | None) -> tuple[Tensor, DNCState] | None:
        """All steps of `[B, T, input_size]`: the same numbers as the step loop, faster.

        W_y [h_t; r_t] is applied once to all steps; with an ``LSTMCell`` controller, W_ih x_t + b is too. In
        the paper's configuration (``LSTMCell`` controller, ``access.uses_fused_step``) the whole sequence is
        one autograd node (``sequence.DNCSequence``); otherwise each step's LSTM runs as one fused node
        (``fused_lstm``) beside the memory step. Padded steps (past ``lengths``) keep the state and give zero
        output, as in ``Recurrent``. With a trace on, returns None (``Recurrent`` then runs the step loop).
        """
        if self.tracing is not None:
            return None
        if type(self.controller) is LSTMCell and self.access.uses_fused_step:
            return self._whole_sequence(x, state, lengths)
        B, T = x.shape[0], x.shape[1]
        mask = padding_mask(lengths, T, x.device)  # (B, T)
        ctrl = self.controller
        fast = type(ctrl) is LSTMCell
        projection = TimeShared(self.access.interface.weight)  # ξ_t = W_ξ h_t + b, dW_ξ once per sequence
        if fast:
            w_x, bias, w_hr = lstm_weights(ctrl, self.input_size)
            pre = F.linear(x, w_x, bias).unbind(1)  # W_ih^(x) x_t + b for all t, T × (B, 4H)
            recurrent = TimeShared(w_hr)  # [W_hh, W_ih^(r)], gradient once per sequence
        xs = x.unbind(1)  # T × (B, I): one backward node instead of T zero-filled (B, T, I) gradients
        hs, rs = [], []
        for t in range(T):
            m = None if mask is None else mask[:, t]
            if fast:
                ctrl_state = state.controller
                h, c = LSTMStep.apply(
                    pre[t], state.read_vectors, ctrl_state.h, ctrl_state.c, recurrent.weight, recurrent.record
                )
                read_vectors, access, _ = self.access(h, state.access, projection=projection)
                new = DNCState(LSTMState(h, c), access, read_vectors)
            else:
                h, new = self._core(xs[t], state, t, m, projection)
            state = new if m is None else st.tree_where(m, new, state)
            hs.append(h)
            rs.append(new.read_vectors)
        h_all = torch.stack(hs, 1)  # (B, T, H)
        r_all = torch.stack(rs, 1).reshape(B, T, -1)  # (B, T, R·W)
        outs = torch.cat([h_all, r_all], -1)  # [h_t; r_t], (B, T, H + R·W)
        y = self.output(outs)  # (B, T, O)
        if mask is not None:
            y = y * mask.unsqueeze(-1).to(y.dtype)
        return y, state

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
        mask = padding_mask(lengths, T, x.device)  # (B, T)
        if mask is not None:
            y = y * mask.unsqueeze(-1).to(y.dtype)
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
    sparse_links: int | None = None,
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
        sparse_links=sparse_links,
    )
    return Recurrent(cell, batch_first=batch_first)
