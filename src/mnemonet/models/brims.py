"""BRIMs (Mittal et al., ICML 2020): layers of Recurrent Independent Mechanisms with top-down attention.

L layers of RIMs (:class:`~mnemonet.models.rims.RIMsCell`) are stepped bottom to top at every time
step. The modules of layer l read, through their input attention, from three sources:

- null: a zero vector (key and value 0), as in RIMs;
- bottom-up: the input x_t for l = 0, else the concatenated module states of layer l-1 at time t;
- top-down: the concatenated module states of layer l+1 at time t-1 (every layer but the top).

So for a module k of layer l, with ``Q^l_k = h^l_{t-1,k} W^{q,l}_k``::

    α^l_k = softmax([0, Q^l_k·K_bu, Q^l_k·K_td] / sqrt(d_k)),   K_bu = h^{l-1}_t W^{k,l}_bu,
                                                                K_td = h^{l+1}_{t-1} W^{k,l}_td

and the read ``A^l_k = α_bu V_bu + α_td V_td``. Selection (the k modules attending least to null),
per-module dynamics and communication within the layer then proceed as in RIMs. The top-down signal
may be dropped out (``top_down_dropout``, elementwise on h^{l+1}_{t-1}, in training). The output is
the state of one layer (``output_layer``, default the top).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnemonet._checks import check_positive, check_tensor
from mnemonet.models.base import Cell
from mnemonet.models.recurrent import Recurrent
from mnemonet.models.registry import register
from mnemonet.models.rims import OFFICIAL_STD, RIMsCell

BRIMsState = tuple  # one RIMsState (or RIMsGRUState) per layer, bottom first


def _per_layer(value: int | Sequence[int], num_layers: int, name: str) -> list[int]:
    """An int per layer from an int or a sequence of ``num_layers`` ints."""
    values = [value] * num_layers if isinstance(value, int) else list(value)
    if len(values) != num_layers:
        raise ValueError(f"{name}: expected an int or {num_layers} ints (one per layer), got {value!r}")
    for v in values:
        check_positive(v, name)
    return values


class BRIMsCell(Cell):
    """One time step of BRIMs: L RIMs layers, each attending over [null, bottom-up, top-down].

    Layer l at step t (l = 0 is the bottom):

    1. Bottom-up keys/values: ``K_bu = b W^k_bu``, ``V_bu = b W^v_bu`` with b = x_t (l = 0) or the
       concatenated states of layer l-1 after step t (``layers[l].input_key`` / ``input_value``).
    2. Top-down keys/values, for l < L-1: ``K_td = d W^k_td``, ``V_td = d W^v_td`` with d the concatenated
       states of layer l+1 at step t-1 (``top_down_key[l]`` / ``top_down_value[l]``, no bias), after
       dropout ``top_down_dropout``. The top layer has no layer above and attends over [null, bottom-up].
    3. Input attention, selection, dynamics and communication of ``layers[l]`` (RIMs eqs. 2-7).

    ``forward(x_t, state) -> (y_t, state)``; the state is a tuple of per-layer RIMs states (bottom
    first) and ``y_t`` `[B, n_o * h_o]` the concatenated module states of layer ``output_layer``.

    Selection trace: ``model.trace(x)`` returns ``"active"``, `[B, T, L, n_max]` bool (false at padded steps
    and in slots past a layer's module count).

    Args:
        input_size: D, size of x_t.
        num_modules: modules per layer (an int, or one per layer).
        module_size: hidden size of each module (an int, or one per layer).
        k: active modules per step (an int, or one per layer).
        num_layers: L.
        dynamics, input_heads, input_key_size, input_value_size, comm_heads, comm_key_size,
            comm_value_size, input_dropout, comm_dropout, selection, input_bias, dropout, comm_output,
            inactive_comm, init: as :class:`RIMsCell`, for every layer (the top-down keys/values share
            the input attention's heads and sizes; they have no bias). Defaults follow the official
            BRIMs code (sarthmit/BRIMs): 4 input heads, communication keys of 32.
        top_down_dropout: dropout probability on the top-down signal.
        output_layer: the layer whose states are the output (negative counts from the top).
    """

    def __init__(
        self,
        input_size: int,
        num_modules: int | Sequence[int],
        module_size: int | Sequence[int],
        k: int | Sequence[int],
        num_layers: int = 2,
        dynamics: str = "lstm",
        input_heads: int = 4,
        input_key_size: int = 64,
        input_value_size: int | None = None,
        comm_heads: int = 4,
        comm_key_size: int = 32,
        comm_value_size: int | None = None,
        input_dropout: float = 0.0,
        comm_dropout: float = 0.0,
        top_down_dropout: float = 0.0,
        selection: str = "null",
        output_layer: int = -1,
        input_bias: bool = False,
        dropout: float = 0.1,
        comm_output: str = "gated_tanh",
        inactive_comm: str = "proposed",
        init: str = "official",
    ) -> None:
        super().__init__()
        check_positive(input_size, "input_size")
        check_positive(num_layers, "num_layers")
        ns = _per_layer(num_modules, num_layers, "num_modules")
        hs = _per_layer(module_size, num_layers, "module_size")
        ks = _per_layer(k, num_layers, "k")
        if not -num_layers <= output_layer < num_layers or isinstance(output_layer, bool):
            raise ValueError(
                f"output_layer: expected an integer in [{-num_layers}, {num_layers - 1}], got {output_layer}"
            )
        if not 0.0 <= top_down_dropout < 1.0:
            raise ValueError(f"top_down_dropout: expected a probability in [0, 1), got {top_down_dropout}")
        self.input_size = input_size
        self.num_layers = num_layers
        self.num_modules, self.module_sizes, self.ks = ns, hs, ks
        self.output_layer = output_layer % num_layers
        self.output_size = ns[self.output_layer] * hs[self.output_layer]
        self.top_down_dropout = top_down_dropout
        self.layers = nn.ModuleList(
            RIMsCell(
                input_size if i == 0 else ns[i - 1] * hs[i - 1],
                ns[i],
                hs[i],
                ks[i],
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
            for i in range(num_layers)
        )
        # top-down maps of layer l read layer l+1: no bias, so a zero signal has zero key and value
        self.top_down_key = nn.ModuleList(
            nn.Linear(ns[i + 1] * hs[i + 1], input_heads * input_key_size, bias=False) for i in range(num_layers - 1)
        )
        self.top_down_value = nn.ModuleList(
            nn.Linear(ns[i + 1] * hs[i + 1], input_heads * self.layers[i].input_value_size, bias=False)
            for i in range(num_layers - 1)
        )
        if init == "official":
            with torch.no_grad():
                for lin in [*self.top_down_key, *self.top_down_value]:
                    lin.weight.normal_(0.0, OFFICIAL_STD)

    def extra_repr(self) -> str:
        s = f"num_layers={self.num_layers}"
        if self.output_layer != self.num_layers - 1:
            s += f", output_layer={self.output_layer}"
        if self.top_down_dropout:
            s += f", top_down_dropout={self.top_down_dropout}"
        return s

    def initial_state(self, batch_size, device=None, dtype=None) -> BRIMsState:
        return tuple(layer.initial_state(batch_size, device, dtype) for layer in self.layers)

    def top_down(self, layer: int, above: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of the top-down signal into ``layer`` (step 2).

        Args:
            layer: l, in [0, L-2].
            above: `[B, n_{l+1}, h_{l+1}]` states of layer l+1 at t-1.

        Returns:
            keys `[B, H, d_k]` and values `[B, H, d_v]`.
        """
        cell = self.layers[layer]
        d = F.dropout(above.flatten(1), self.top_down_dropout, self.training)  # (B, n_{l+1} * h_{l+1})
        keys = self.top_down_key[layer](d).unflatten(-1, (cell.input_heads, cell.input_key_size))  # (B, H, d_k)
        values = self.top_down_value[layer](d).unflatten(-1, (cell.input_heads, cell.input_value_size))  # (B, H, dv)
        return keys, values

    def _step(
        self, keys0: Tensor, values0: Tensor, state: BRIMsState, noise: tuple | None = None
    ) -> tuple[Tensor, BRIMsState, Tensor]:
        """All layers for one step, given the bottom-up keys/values of layer 0 (`[B, H, d]`) and each layer's
        dropout noise for the step (``noise[i]``, see :meth:`RIMsCell.dropout_noise`; None: ``F.dropout``).

        Returns the output `[B, output_size]`, the next state and the `[B, L, n_max]` active mask.
        """
        L = self.num_layers
        new, actives = [], []
        keys, values = keys0, values0
        for i, layer in enumerate(self.layers):
            if i > 0:
                keys, values = layer.project_inputs(new[i - 1].h.flatten(1))  # (B, H, d)
            if i < L - 1:
                td_keys, td_values = self.top_down(i, state[i + 1].h)  # (B, H, d): layer i+1 at t-1
                k_all = torch.stack([keys, td_keys], 1)  # (B, 2, H, d_k): [bottom-up, top-down]
                v_all = torch.stack([values, td_values], 1)  # (B, 2, H, d_v)
            else:
                k_all, v_all = keys.unsqueeze(1), values.unsqueeze(1)  # (B, 1, H, d): bottom-up only
            out, s = layer.step_projected(k_all, v_all, state[i], None if noise is None else noise[i])
            new.append(s)
            actives.append(out.active)
        n_max = max(self.num_modules)
        active = torch.stack([F.pad(a, (0, n_max - a.shape[1])) for a in actives], 1)  # (B, L, n_max)
        return new[self.output_layer].h.flatten(1), tuple(new), active

    def prepare(self, x: Tensor, mask: Tensor | None = None) -> list[tuple[Tensor, Tensor, Any]]:
        """Layer 0's bottom-up keys and values for all T steps at once, and every layer's dropout noise for all
        steps (:meth:`RIMsCell.step_noise`, drawn layer by layer): T triples (`[B, H, d]`, `[B, H, d]`,
        per-layer noise or None)."""
        keys, values = self.layers[0].project_inputs(x)  # (B, T, H, d)
        per_layer = [layer.step_noise(x.shape[0], x.shape[1], keys) for layer in self.layers]
        noises = list(zip(*per_layer, strict=True))  # T tuples of one entry per layer
        return list(zip(keys.unbind(1), values.unbind(1), noises, strict=True))

    def step(self, p_t, state, t=0, mask=None):
        """All layers for step t from layer 0's prepared keys and values."""
        y, new, _ = self._step(p_t[0], p_t[1], state, p_t[2])
        return y, new

    def trace_step(self, p_t, state, t=0, mask=None):
        """``step`` plus ``active``: `[B, L, n_max]` bool, the modules selected in each layer."""
        y, new, active = self._step(p_t[0], p_t[1], state, p_t[2])
        return y, new, {"active": active}

    def forward(self, x_t, state, t=0, mask=None):
        """One step: `[B, input_size]` -> `[B, output_size]` (the output layer's module states)."""
        check_tensor(x_t, "x_t", ("B", self.input_size))
        return self.step(self.prepare(x_t.unsqueeze(1))[0], state)


@register("brims")
def brims(
    input_size: int,
    num_modules: int | Sequence[int],
    module_size: int | Sequence[int],
    k: int | Sequence[int],
    num_layers: int = 2,
    dynamics: str = "lstm",
    input_heads: int = 4,
    input_key_size: int = 64,
    input_value_size: int | None = None,
    comm_heads: int = 4,
    comm_key_size: int = 32,
    comm_value_size: int | None = None,
    input_dropout: float = 0.0,
    comm_dropout: float = 0.0,
    top_down_dropout: float = 0.0,
    selection: str = "null",
    output_layer: int = -1,
    input_bias: bool = False,
    dropout: float = 0.1,
    comm_output: str = "gated_tanh",
    inactive_comm: str = "proposed",
    init: str = "official",
    batch_first: bool = True,
) -> Recurrent:
    """Build a BRIMs model: ``Recurrent(BRIMsCell(...))``; see :class:`BRIMsCell` for the arguments.

    Example:
        >>> model = brims(input_size=3, num_modules=4, module_size=8, k=2, num_layers=2)
        >>> y, state = model(torch.zeros(2, 5, 3))
        >>> tuple(y.shape), len(state), tuple(state[1].h.shape)
        ((2, 5, 32), 2, (2, 4, 8))
    """
    cell = BRIMsCell(
        input_size,
        num_modules,
        module_size,
        k,
        num_layers=num_layers,
        dynamics=dynamics,
        input_heads=input_heads,
        input_key_size=input_key_size,
        input_value_size=input_value_size,
        comm_heads=comm_heads,
        comm_key_size=comm_key_size,
        comm_value_size=comm_value_size,
        input_dropout=input_dropout,
        comm_dropout=comm_dropout,
        top_down_dropout=top_down_dropout,
        selection=selection,
        output_layer=output_layer,
        input_bias=input_bias,
        dropout=dropout,
        comm_output=comm_output,
        inactive_comm=inactive_comm,
        init=init,
    )
    return Recurrent(cell, batch_first=batch_first)


__all__ = ["BRIMsCell", "BRIMsState", "brims"]
