"""The time loop: ``Recurrent`` runs any cell over a sequence; ``Stacked`` and ``Bidirectional`` compose.

All three also accept ``torch.nn.RNN/LSTM/GRU`` state-dict keys (``weight_ih_l0``, ``..._reverse``),
translating them to their own layout on ``load_state_dict``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from mnemonet import kernels
from mnemonet.models import state as st
from mnemonet.models.base import Cell, RecurrentModel

State = Any
_TORCH_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")


def padding_mask(lengths: Tensor | None, steps: int, device: torch.device | None = None) -> Tensor | None:
    """`[B, T]` booleans, True at each sequence's real steps (t < length); None when ``lengths`` is None.

    Args:
        lengths: `[B]` lengths, or None for full-length sequences.
        steps: T.
        device: where the mask goes (default: ``lengths``' device).

    Example:
        >>> padding_mask(torch.tensor([3, 1]), 4).int().tolist()
        [[1, 1, 1, 0], [1, 0, 0, 0]]
    """
    if lengths is None:
        return None
    mask = torch.arange(steps, device=lengths.device)[None] < lengths[:, None]
    return mask if device is None else mask.to(device)


def zero_padding(x: Tensor, mask: Tensor | None) -> Tensor:
    """``x`` `[B, T, ...]` with every padded step set to 0 (False for bools); ``mask`` `[B, T]` or None.

    Part of the padding rule: whatever padded steps hold (NaN, inf), ``torch.where`` selects zeros there, so
    nothing computed from them is NaN and no gradient reaches them.
    """
    if mask is None:
        return x
    return torch.where(mask.reshape(*mask.shape, *([1] * (x.dim() - 2))), x, x.new_zeros(()))


def keep_real(mask: Tensor | None, new: State, old: State, y_t: Tensor) -> tuple[State, Tensor]:
    """The padding rule for one step: padded rows keep their state and output zero (``torch.where``).

    Args:
        mask: `[B]` bool, true where the step is real; None for all.
        new, old: the state after and before the step.
        y_t: `[B, ...]` output of the step.

    Returns:
        The state to carry and the output to emit.
    """
    if mask is None:
        return new, y_t
    return st.tree_where(mask, new, old), zero_padding(y_t.unsqueeze(1), mask[:, None]).squeeze(1)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence in time within its own length; padding stays at the end.

    Args:
        x: `[B, T, ...]` batch-first sequences.
        lengths: `[B]` lengths, or None for full-length sequences.
    """
    if lengths is None:
        return x.flip(1)
    T = x.shape[1]
    t = torch.arange(T)
    lens = lengths.to(torch.int64)[:, None]  # (B, 1)
    idx = torch.where(t[None] < lens, lens - 1 - t[None], t[None])  # (B, T)
    idx = idx.to(x.device).reshape(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return torch.gather(x, 1, idx)


def _rename_torch_keys(state_dict: dict[str, Tensor], prefix: str, rename) -> None:
    for key in list(state_dict):
        if not key.startswith(prefix):
            continue
        m = _TORCH_KEY.match(key[len(prefix) :])
        if m:
            new = rename(m.group(1), int(m.group(2)), bool(m.group(3)))
            if new is not None:
                state_dict[prefix + new] = state_dict.pop(key)


class Recurrent(RecurrentModel):
    """Run a :class:`Cell` over time (one layer, one direction).

    Args:
        cell: the cell to unroll.
        batch_first: input/output layout `[B, T, D]` (default) or `[T, B, D]`.
        reverse: run from each sequence's last real step to its first (outputs stay aligned with input).

    Example:
        >>> from mnemonet.models.cells import LSTMCell
        >>> rnn = Recurrent(LSTMCell(3, 5))
        >>> y, state = rnn(torch.zeros(2, 7, 3))
        >>> tuple(y.shape), tuple(state.h.shape)
        ((2, 7, 5), (2, 5))
    """

    def __init__(self, cell: Cell, batch_first: bool = True, reverse: bool = False) -> None:
        super().__init__()
        if not isinstance(cell, Cell):
            raise ValueError(f"cell: expected a mnemonet Cell, got {type(cell).__name__}")
        self.cell = cell
        self.batch_first = batch_first
        self.reverse = reverse
        self.input_size = cell.input_size
        self.output_size = cell.output_size
        self._traces: dict[str, Tensor] | None = None  # filled by ``trace`` (see RecurrentModel.trace)
        self.register_load_state_dict_pre_hook(self._from_torch)

    def _from_torch(self, module, state_dict, prefix, *args) -> None:
        _rename_torch_keys(state_dict, prefix, lambda name, layer, rev: None if layer or rev else f"cell.{name}")

    def extra_repr(self) -> str:
        parts = [] if self.batch_first else ["batch_first=False"]
        return ", ".join(parts + (["reverse=True"] if self.reverse else []))

    def initial_state(self, batch_size, device=None, dtype=None) -> State:
        return self.cell.initial_state(batch_size, device=device, dtype=dtype)

    def step(self, x_t, state, t=0, mask=None):
        return self.cell(x_t, state, t=t, mask=mask)

    def _run(self, x, state, lengths, return_states):
        if self.reverse:
            x = reverse_padded(x, lengths)
        mask = padding_mask(lengths, x.shape[1], x.device)  # (B, T)
        x = zero_padding(x, mask)
        if kernels.is_enabled() and not return_states and self._traces is None:
            fast = self.cell.sequence(x, state, lengths)
        else:
            fast = None
        if fast is not None:
            y, state = fast
            states = None
        else:
            y, state, states = self._loop(x, state, mask, return_states)
        if self.reverse:
            y = reverse_padded(y, lengths)
            states = reverse_padded(states, lengths) if states is not None else None
            if self._traces:
                self._traces = {k: reverse_padded(v, lengths) for k, v in self._traces.items()}
        return y, state, states

    def _loop(self, x, state, mask, return_states):
        """The one time loop: ``cell.prepare`` once, then ``cell.step`` per step with the padding rule."""
        T = x.shape[1]
        inputs = self.cell.prepare(x, mask)  # T per-step inputs
        tracing = self._traces is not None
        ys, states, traces = [], [], []
        for t in range(T):
            m = None if mask is None else mask[:, t]  # (B,)
            if tracing:
                y_t, new, record = self.cell.trace_step(inputs[t], state, t=t, mask=m)
                traces.append(record)
            else:
                y_t, new = self.cell.step(inputs[t], state, t=t, mask=m)
            state, y_t = keep_real(m, new, state, y_t)
            ys.append(y_t)
            if return_states:
                states.append(st.flatten(state))
        if tracing and traces and traces[0]:
            self._traces = {
                key: zero_padding(torch.stack([r[key].detach() for r in traces], 1), mask) for key in traces[0]
            }  # (B, T, ...)
        y = torch.stack(ys, 1)  # (B, T, H_out)
        return y, state, (torch.stack(states, 1) if return_states else None)  # (B, T, S)


class BiState(NamedTuple):
    """State of a :class:`Bidirectional` layer."""

    forward: State
    backward: State


class Bidirectional(RecurrentModel):
    """Two models over the same input, the second on each sequence reversed within its length.

    Outputs are concatenated: `[B, T, H_f + H_b]`. ``step`` applies both directions' steps to the
    same ``x_t`` (a bidirectional model has no causal one-step map; this is for inspection).

    Args:
        forward_model, backward_model: models with the same input size.
        batch_first: layout of input and output.
    """

    def __init__(self, forward_model: RecurrentModel, backward_model: RecurrentModel, batch_first: bool = True):
        super().__init__()
        if forward_model.input_size != backward_model.input_size:
            raise ValueError(
                f"backward_model: expected input_size {forward_model.input_size}, got {backward_model.input_size}"
            )
        self.fwd = forward_model
        self.bwd = backward_model
        self.batch_first = batch_first
        self.input_size = forward_model.input_size
        self.output_size = forward_model.output_size + backward_model.output_size
        self.register_load_state_dict_pre_hook(self._from_torch)

    def _from_torch(self, module, state_dict, prefix, *args) -> None:
        _rename_torch_keys(
            state_dict, prefix, lambda n, layer, rev: None if layer else f"{'bwd' if rev else 'fwd'}.{n}_l0"
        )

    def initial_state(self, batch_size, device=None, dtype=None) -> BiState:
        return BiState(
            self.fwd.initial_state(batch_size, device, dtype), self.bwd.initial_state(batch_size, device, dtype)
        )

    def step(self, x_t, state, t=0, mask=None):
        y_f, s_f = self.fwd.step(x_t, state.forward, t=t, mask=mask)
        y_b, s_b = self.bwd.step(x_t, state.backward, t=t, mask=mask)
        return torch.cat([y_f, y_b], -1), BiState(s_f, s_b)

    def _run(self, x, state, lengths, return_states):
        y_f, s_f, h_f = self.fwd._run(x, state.forward, lengths, return_states)
        y_b, s_b, h_b = self.bwd._run(reverse_padded(x, lengths), state.backward, lengths, return_states)
        y = torch.cat([y_f, reverse_padded(y_b, lengths)], -1)
        states = torch.cat([h_f, reverse_padded(h_b, lengths)], -1) if return_states else None
        return y, BiState(s_f, s_b), states


class Stacked(RecurrentModel):
    """Layers applied in turn, each to the output sequence of the one below; dropout between layers.

    The state is a tuple with one entry per layer.

    Args:
        layers: models whose sizes chain (``layers[i].output_size == layers[i+1].input_size``).
        dropout: dropout probability on the outputs of every layer but the last (as ``torch.nn.LSTM``).
        batch_first: layout of input and output.
    """

    def __init__(self, layers: Sequence[RecurrentModel], dropout: float = 0.0, batch_first: bool = True):
        super().__init__()
        if len(layers) == 0:
            raise ValueError("layers: expected at least one layer")
        for i in range(1, len(layers)):
            if layers[i].input_size != layers[i - 1].output_size:
                raise ValueError(
                    f"layers[{i}]: expected input_size {layers[i - 1].output_size} "
                    f"(the output size of layer {i - 1}), got {layers[i].input_size}"
                )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout}")
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.batch_first = batch_first
        self.input_size = layers[0].input_size
        self.output_size = layers[-1].output_size
        self.register_load_state_dict_pre_hook(self._from_torch)

    def _from_torch(self, module, state_dict, prefix, *args) -> None:
        _rename_torch_keys(
            state_dict, prefix, lambda n, layer, rev: f"layers.{layer}.{n}_l0{'_reverse' if rev else ''}"
        )

    def initial_state(self, batch_size, device=None, dtype=None) -> tuple:
        return tuple(layer.initial_state(batch_size, device, dtype) for layer in self.layers)

    def step(self, x_t, state, t=0, mask=None):
        new = []
        for i, layer in enumerate(self.layers):
            if i:
                x_t = self.dropout(x_t)
            x_t, s = layer.step(x_t, state[i], t=t, mask=mask)
            new.append(s)
        return x_t, tuple(new)

    def _run(self, x, state, lengths, return_states):
        new, trajectories = [], []
        for i, layer in enumerate(self.layers):
            if i:
                x = self.dropout(x)
            x, s, h = layer._run(x, state[i], lengths, return_states)
            new.append(s)
            trajectories.append(h)
        states = torch.cat(trajectories, -1) if return_states else None
        return x, tuple(new), states
