"""Elman RNN, LSTM and GRU cells with torch.nn's parameter names, layouts, gate order and initialisation.

Parameters are ``weight_ih`` `[G*H, I]`, ``weight_hh`` `[G*H, H]`, ``bias_ih``, ``bias_hh`` `[G*H]`
(or one ``bias`` with ``single_bias=True``), gates stacked in torch's order: LSTM i, f, g, o; GRU r, z, n.
One step runs torch's fused cell op; whole sequences run torch's fused sequence kernels
(``torch.lstm``/``torch.gru``/``torch.rnn_tanh``), so a plain LSTM is as fast as ``torch.nn.LSTM``.
The factories ``rnn``, ``lstm``, ``gru`` build (stacked, bidirectional) models that load
``torch.nn.RNN/LSTM/GRU`` state dicts directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from mnemonet import kernels
from mnemonet._checks import check_choice, check_positive
from mnemonet.models import init as inits
from mnemonet.models.base import Cell, RecurrentModel
from mnemonet.models.recurrent import Bidirectional, Recurrent, Stacked
from mnemonet.models.registry import register


class RNNState(NamedTuple):
    """State of an Elman RNN: ``h`` `[B, H]`."""

    h: Tensor


class GRUState(NamedTuple):
    """State of a GRU: ``h`` `[B, H]`."""

    h: Tensor


class LSTMState(NamedTuple):
    """State of an LSTM: hidden ``h`` and cell ``c``, each `[B, H]`."""

    h: Tensor
    c: Tensor


def softsign(x: Tensor) -> Tensor:
    """softsign(x) = x / (1 + |x|)."""
    return x / (1 + x.abs())


def lstm_update(
    gates: Tensor, c: Tensor, cell_output: Callable[[Tensor], Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """The LSTM cell update from summed pre-activations, gate order i, f, g, o (the one copy in mnemonet):

        c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g),    h' = σ(o) ⊙ tanh(ĉ'),  ĉ' = ``cell_output``(c') (default c').

    BN-LSTM passes its normalisation of c as ``cell_output`` (Cooijmans et al., eq. 8).

    Args:
        gates: `[..., 4H]` pre-activations.
        c: `[..., H]` previous cell state.
        cell_output: map of c' before the output tanh, or None.

    Returns:
        ``(h', c')``, each `[..., H]`.
    """
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    c_out = c_new if cell_output is None else cell_output(c_new)
    return torch.sigmoid(o) * torch.tanh(c_out), c_new


class _TorchLayoutCell(Cell):
    """Shared by the three cells: parameters, initialisation, fused sequence kernel."""

    gates: int = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        single_bias: bool = False,
        input_init: str = "default",
        recurrent_init: str = "default",
    ) -> None:
        super().__init__()
        check_positive(input_size, "input_size")
        check_positive(hidden_size, "hidden_size")
        check_choice(input_init, "input_init", inits.INPUT_INITS)
        check_choice(recurrent_init, "recurrent_init", inits.RECURRENT_INITS)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = hidden_size
        self.single_bias = bool(single_bias and bias)
        self.has_bias = bias
        self.input_init = input_init
        self.recurrent_init = recurrent_init
        G = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G, input_size))
        self.weight_hh = nn.Parameter(torch.empty(G, hidden_size))
        if bias and single_bias:
            self.bias = nn.Parameter(torch.empty(G))
        elif bias:
            self.bias_ih = nn.Parameter(torch.empty(G))
            self.bias_hh = nn.Parameter(torch.empty(G))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's U(−1/√H, 1/√H) for everything, then the named input/recurrent schemes."""
        for p in self.parameters():
            inits.default_uniform_(p, self.hidden_size)
        if self.input_init == "xavier":
            inits.xavier_blocks_(self.weight_ih, self.gates)
        if self.recurrent_init == "orthogonal":
            inits.orthogonal_blocks_(self.weight_hh, self.gates)
        elif self.recurrent_init == "identity":
            inits.identity_blocks_(self.weight_hh, self.gates)

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        if not self.has_bias:
            parts.append("bias=False")
        if self.single_bias:
            parts.append("single_bias=True")
        if self.input_init != "default":
            parts.append(f"input_init={self.input_init!r}")
        if self.recurrent_init != "default":
            parts.append(f"recurrent_init={self.recurrent_init!r}")
        return ", ".join(parts)

    def _biases(self) -> tuple[Tensor | None, Tensor | None]:
        """(b_ih, b_hh) as torch's kernels take them; a single bias goes in b_ih with b_hh = 0."""
        if not self.has_bias:
            return None, None
        if self.single_bias:
            return self.bias, torch.zeros_like(self.bias)
        return self.bias_ih, self.bias_hh

    def _flat_weights(self) -> list[Tensor]:
        b_ih, b_hh = self._biases()
        return [self.weight_ih, self.weight_hh] + ([b_ih, b_hh] if self.has_bias else [])

    def initial_state(self, batch_size, device=None, dtype=None):
        dtype = dtype or self.weight_ih.dtype
        device = device or self.weight_ih.device
        zeros = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return self._state_from(zeros, zeros.clone())

    def _state_from(self, h: Tensor, c: Tensor):
        raise NotImplementedError

    def _fused(self, kernel: Callable, x: Tensor, hx: list[Tensor], lengths: Tensor | None) -> tuple[Tensor, list]:
        """Run torch's fused kernel over batch-first `[B, T, I]`; hx: list of `[1, B, H]`."""
        args = (self._flat_weights(), self.has_bias, 1, 0.0, self.training, False)
        hx_arg = hx if len(hx) > 1 else hx[0]
        if lengths is None:
            out = kernel(x, hx_arg, *args, True)
            return out[0], list(out[1:])
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        hx_sorted = [h.index_select(1, packed.sorted_indices) for h in hx]
        out = kernel(packed.data, packed.batch_sizes, hx_sorted if len(hx) > 1 else hx_sorted[0], *args)
        y_packed = PackedSequence(out[0], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        y, _ = pad_packed_sequence(y_packed, batch_first=True, total_length=x.shape[1])  # (B, T, H)
        return y, [h.index_select(1, packed.unsorted_indices) for h in out[1:]]


class RNNCell(_TorchLayoutCell):
    """Elman RNN: h_t = φ(W_ih x_t + b_ih + W_hh h_{t−1} + b_hh), φ = tanh, relu or softsign.

    Args:
        input_size: I.
        hidden_size: H.
        nonlinearity: ``"tanh"`` (default), ``"relu"`` or ``"softsign"`` (x / (1 + |x|); no fused kernel).
        bias, single_bias, input_init, recurrent_init: see :class:`LSTMCell`.
    """

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", **kwargs) -> None:
        check_choice(nonlinearity, "nonlinearity", ("tanh", "relu", "softsign"))
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, **kwargs)
        self.state_limits = {} if nonlinearity == "relu" else {"h": 1.0}  # tanh, softsign: |h| < 1

    def extra_repr(self) -> str:
        extra = "" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity!r}"
        return super().extra_repr() + extra

    def _state_from(self, h, c):
        return RNNState(h)

    def forward(self, x_t: Tensor, state: RNNState, t: int = 0, mask: Tensor | None = None):
        b_ih, b_hh = self._biases()
        if self.nonlinearity == "softsign":
            h = softsign(F.linear(x_t, self.weight_ih, b_ih) + F.linear(state.h, self.weight_hh, b_hh))
        else:
            op = torch.rnn_tanh_cell if self.nonlinearity == "tanh" else torch.rnn_relu_cell
            h = op(x_t, state.h, self.weight_ih, self.weight_hh, b_ih, b_hh)
        return h, RNNState(h)

    def sequence(self, x, state, lengths):
        if self.nonlinearity == "softsign":
            return None
        kernel = torch.rnn_tanh if self.nonlinearity == "tanh" else torch.rnn_relu
        y, (h,) = self._fused(kernel, x, [state.h[None]], lengths)
        return y, RNNState(h[0])


class LSTMCell(_TorchLayoutCell):
    """LSTM (Hochreiter & Schmidhuber 1997, with forget gate), torch's equations and gate order i, f, g, o:

    i = σ(W_ii x + b_ii + W_hi h + b_hi), f = σ(W_if x + b_if + W_hf h + b_hf),
    g = tanh(W_ig x + b_ig + W_hg h + b_hg), o = σ(W_io x + b_io + W_ho h + b_ho),
    c' = f ⊙ c + i ⊙ g,  h' = o ⊙ tanh(c').

    Args:
        input_size: I.
        hidden_size: H.
        bias: use biases.
        single_bias: one bias vector ``bias`` `[4H]` per gate, as in the papers' equations and Keras
            (torch's kernels get it as b_ih with b_hh = 0).
        input_init: ``"default"`` (torch's uniform) or ``"xavier"`` (Glorot uniform per gate block).
        recurrent_init: ``"default"``, ``"orthogonal"`` or ``"identity"`` (per gate block).
        forget_bias: if given, the forget gate's total bias starts at this value (e.g. 1.0,
            Gers et al. 2000; Jozefowicz et al. 2015).
    """

    state_limits: ClassVar[dict[str, float]] = {"h": 1.0}  # h = o ⊙ tanh(c); c is unbounded

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float | None = None, **kwargs) -> None:
        self.forget_bias = forget_bias
        super().__init__(input_size, hidden_size, **kwargs)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.forget_bias is not None and self.has_bias:
            H = self.hidden_size
            with torch.no_grad():
                if self.single_bias:
                    self.bias[H : 2 * H].fill_(self.forget_bias)
                else:
                    self.bias_ih[H : 2 * H].fill_(self.forget_bias)
                    self.bias_hh[H : 2 * H].zero_()

    def extra_repr(self) -> str:
        extra = "" if self.forget_bias is None else f", forget_bias={self.forget_bias}"
        return super().extra_repr() + extra

    def _state_from(self, h, c):
        return LSTMState(h, c)

    def forward(self, x_t: Tensor, state: LSTMState, t: int = 0, mask: Tensor | None = None):
        b_ih, b_hh = self._biases()
        if kernels.is_enabled():  # torch's fused cell: the same equations in one op
            h, c = torch.lstm_cell(x_t, (state.h, state.c), self.weight_ih, self.weight_hh, b_ih, b_hh)
        else:
            h, c = lstm_update(F.linear(x_t, self.weight_ih, b_ih) + F.linear(state.h, self.weight_hh, b_hh), state.c)
        return h, LSTMState(h, c)

    def sequence(self, x, state, lengths):
        y, (h, c) = self._fused(torch.lstm, x, [state.h[None], state.c[None]], lengths)
        return y, LSTMState(h[0], c[0])


class GRUCell(_TorchLayoutCell):
    """GRU (Cho et al. 2014), torch's equations and gate order r, z, n:

    r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 − z) ⊙ n + z ⊙ h.

    With ``single_bias=True``: n = tanh(W_in x + b_n + r ⊙ W_hn h) (Keras' ``reset_after=True`` with one bias).

    Args: see :class:`LSTMCell` (no forget_bias).
    """

    state_limits: ClassVar[dict[str, float]] = {"h": 1.0}  # h' is a convex mix of h and tanh(.): |h| < 1 from h0 = 0 on

    gates = 3

    def _state_from(self, h, c):
        return GRUState(h)

    def forward(self, x_t: Tensor, state: GRUState, t: int = 0, mask: Tensor | None = None):
        b_ih, b_hh = self._biases()
        h = torch.gru_cell(x_t, state.h, self.weight_ih, self.weight_hh, b_ih, b_hh)
        return h, GRUState(h)

    def sequence(self, x, state, lengths):
        y, (h,) = self._fused(torch.gru, x, [state.h[None]], lengths)
        return y, GRUState(h[0])


def stack_cells(
    make_cell: Callable[[int], Cell],
    input_size: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    batch_first: bool = True,
) -> RecurrentModel:
    """Compose cells into a model: one ``Recurrent`` per layer and direction.

    Returns a plain ``Recurrent`` for one unidirectional layer, a ``Bidirectional`` for one
    bidirectional layer, else a ``Stacked`` (dropout between layers). Any of these loads torch's
    ``weight_ih_l{k}[_reverse]`` keys.

    Args:
        make_cell: builds a layer's cell given its input size.
        input_size: I of the first layer.
    """
    check_positive(num_layers, "num_layers")
    layers: list[RecurrentModel] = []
    size = input_size
    for _ in range(num_layers):
        if bidirectional:
            layer: RecurrentModel = Bidirectional(Recurrent(make_cell(size)), Recurrent(make_cell(size)))
        else:
            layer = Recurrent(make_cell(size))
        layers.append(layer)
        size = layer.output_size
    if num_layers == 1:
        layers[0].batch_first = batch_first
        return layers[0]
    return Stacked(layers, dropout=dropout, batch_first=batch_first)


@register("rnn")
def rnn(
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    nonlinearity: str = "tanh",
    bias: bool = True,
    batch_first: bool = True,
    dropout: float = 0.0,
    bidirectional: bool = False,
    single_bias: bool = False,
    input_init: str = "default",
    recurrent_init: str = "default",
) -> RecurrentModel:
    """Elman RNN, arguments as ``torch.nn.RNN`` plus the named options of :class:`RNNCell`."""
    return stack_cells(
        lambda i: RNNCell(i, hidden_size, nonlinearity, bias=bias, single_bias=single_bias,
                          input_init=input_init, recurrent_init=recurrent_init),
        input_size, num_layers, bidirectional, dropout, batch_first,
    )  # fmt: skip


@register("lstm")
def lstm(
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bias: bool = True,
    batch_first: bool = True,
    dropout: float = 0.0,
    bidirectional: bool = False,
    single_bias: bool = False,
    input_init: str = "default",
    recurrent_init: str = "default",
    forget_bias: float | None = None,
) -> RecurrentModel:
    """LSTM, arguments as ``torch.nn.LSTM`` plus the named options of :class:`LSTMCell`.

    Example:
        >>> import torch
        >>> model = lstm(8, 16, num_layers=2)
        >>> model.load_state_dict(torch.nn.LSTM(8, 16, num_layers=2).state_dict())
        <All keys matched successfully>
    """
    return stack_cells(
        lambda i: LSTMCell(i, hidden_size, forget_bias, bias=bias, single_bias=single_bias,
                           input_init=input_init, recurrent_init=recurrent_init),
        input_size, num_layers, bidirectional, dropout, batch_first,
    )  # fmt: skip


@register("gru")
def gru(
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bias: bool = True,
    batch_first: bool = True,
    dropout: float = 0.0,
    bidirectional: bool = False,
    single_bias: bool = False,
    input_init: str = "default",
    recurrent_init: str = "default",
) -> RecurrentModel:
    """GRU, arguments as ``torch.nn.GRU`` plus the named options of :class:`GRUCell`."""
    return stack_cells(
        lambda i: GRUCell(i, hidden_size, bias=bias, single_bias=single_bias,
                          input_init=input_init, recurrent_init=recurrent_init),
        input_size, num_layers, bidirectional, dropout, batch_first,
    )  # fmt: skip


__all__ = [
    "GRUCell", "GRUState", "LSTMCell", "LSTMState", "RNNCell", "RNNState", "gru", "lstm", "lstm_update", "rnn",
    "stack_cells",
]  # fmt: skip
