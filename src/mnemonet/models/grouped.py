"""Grouped (block-diagonal) layers: n independent linear maps, LSTM cells or GRU cells run as one batched matmul.

A RIMs layer holds n modules, each with its own weights. Rather than loop over modules in Python, or
multiply by a dense `[n*in, n*out]` weight masked to block-diagonal on every forward pass, every
grouped layer stores its weights as one `[n, in, out]` tensor and applies them with a single
``torch.baddbmm`` over the module axis. Group g of the output depends only on group g of the input
and on ``weight[g]``, ``bias[g]``. Gate orders follow ``torch.nn.LSTMCell`` (i, f, g, o) and
``torch.nn.GRUCell`` (r, z, n), so group g of a grouped cell equals a torch cell whose ``weight_ih`` is
``weight_ih[g].T`` (and so on): the tests check this module by module.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mnemonet._checks import check_positive, check_tensor
from mnemonet.models.cells import lstm_update


def grouped_matmul(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Apply n independent affine maps, one per group, in one batched matmul.

    ``y[b, g] = x[b, g] @ weight[g] + bias[g]`` for every group g.

    Args:
        x: `[B, n, in]` inputs, one vector per group.
        weight: `[n, in, out]` one weight matrix per group.
        bias: `[n, out]` one bias per group, or None.

    Returns:
        `[B, n, out]` (a transposed view of an `[n, B, out]` result; no copy is made).
    """
    xg = x.transpose(0, 1)  # (n, B, in), a strided view that bmm reads in place
    y = torch.bmm(xg, weight) if bias is None else torch.baddbmm(bias.unsqueeze(1), xg, weight)  # (n, B, out)
    return y.transpose(0, 1)  # (B, n, out)


def _uniform_(tensor: Tensor, fan_in: int) -> None:
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    nn.init.uniform_(tensor, -bound, bound)


class GroupedLinear(nn.Module):
    """n independent linear layers: `[B, n, in]` -> `[B, n, out]`.

    Args:
        num_groups: n, the number of groups (modules).
        in_features: input size of each group.
        out_features: output size of each group.
        bias: learn one bias per group.

    Initialisation: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias, as ``torch.nn.Linear``.
    """

    def __init__(self, num_groups: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        check_positive(num_groups, "num_groups")
        check_positive(in_features, "in_features")
        check_positive(out_features, "out_features")
        self.num_groups, self.in_features, self.out_features = num_groups, in_features, out_features
        self.weight = nn.Parameter(torch.empty(num_groups, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num_groups, out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _uniform_(self.weight, self.in_features)
        if self.bias is not None:
            _uniform_(self.bias, self.in_features)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.in_features}, {self.out_features}, bias={self.bias is not None}"

    def forward(self, x: Tensor) -> Tensor:
        """`[B, n, in]` -> `[B, n, out]`."""
        check_tensor(x, "x", ("B", self.num_groups, self.in_features))
        return grouped_matmul(x, self.weight, self.bias)


class _GroupedRNNBase(nn.Module):
    """Parameters shared by the grouped LSTM and GRU cells (``torch.nn`` names, grouped layout)."""

    gates: int

    def __init__(self, num_groups: int, input_size: int, hidden_size: int) -> None:
        super().__init__()
        check_positive(num_groups, "num_groups")
        check_positive(input_size, "input_size")
        check_positive(hidden_size, "hidden_size")
        self.num_groups, self.input_size, self.hidden_size = num_groups, input_size, hidden_size
        width = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(num_groups, input_size, width))
        self.weight_hh = nn.Parameter(torch.empty(num_groups, hidden_size, width))
        self.bias_ih = nn.Parameter(torch.empty(num_groups, width))
        self.bias_hh = nn.Parameter(torch.empty(num_groups, width))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) for every parameter, as ``torch.nn.LSTMCell``."""
        for p in self.parameters():
            _uniform_(p, self.hidden_size)

    def extra_repr(self) -> str:
        return f"num_groups={self.num_groups}, input_size={self.input_size}, hidden_size={self.hidden_size}"

    def recurrent_gates(self, h: Tensor) -> Tensor:
        """The recurrent pre-activations ``h @ W_hh + b_hh``: `[B, n, hidden]` -> `[B, n, gates*hidden]`."""
        return grouped_matmul(h, self.weight_hh, self.bias_hh)

    def input_gates(self, x: Tensor) -> Tensor:
        """The input pre-activations ``x @ W_ih + b_ih``: `[B, n, input]` -> `[B, n, gates*hidden]`."""
        return grouped_matmul(x, self.weight_ih, self.bias_ih)


class GroupedLSTMCell(_GroupedRNNBase):
    """n independent LSTM cells, one per group, in one batched matmul per weight.

    For each group g (gate order i, f, g, o as ``torch.nn.LSTMCell``)::

        [i, f, g, o] = x W_ih[g] + b_ih[g] + h W_hh[g] + b_hh[g]
        c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
        h' = sigmoid(o) * tanh(c')

    Args:
        num_groups: n.
        input_size: input size of each group.
        hidden_size: hidden size of each group.

    Parameters: ``weight_ih`` `[n, input, 4*hidden]`, ``weight_hh`` `[n, hidden, 4*hidden]`, ``bias_ih``,
    ``bias_hh`` `[n, 4*hidden]`.
    """

    gates = 4

    def forward(self, x: Tensor, h: Tensor, c: Tensor, hh: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One step of every group.

        Args:
            x: `[B, n, input]` input of each group.
            h, c: `[B, n, hidden]` previous hidden and cell states.
            hh: `[B, n, 4*hidden]` precomputed :meth:`recurrent_gates` of ``h``, or None to compute it.

        Returns:
            ``(h', c')``, each `[B, n, hidden]`.
        """
        if hh is None:
            hh = self.recurrent_gates(h)
        return lstm_update(self.input_gates(x) + hh, c)  # gates: (B, n, 4*hidden)


class GroupedGRUCell(_GroupedRNNBase):
    """n independent GRU cells, one per group, in one batched matmul per weight.

    For each group g (gate order r, z, n as ``torch.nn.GRUCell``)::

        [r_x, z_x, n_x] = x W_ih[g] + b_ih[g],   [r_h, z_h, n_h] = h W_hh[g] + b_hh[g]
        r = sigmoid(r_x + r_h),  z = sigmoid(z_x + z_h)
        n = tanh(n_x + r * n_h)
        h' = (1 - z) * n + z * h

    Args:
        num_groups: n.
        input_size: input size of each group.
        hidden_size: hidden size of each group.

    Parameters: ``weight_ih`` `[n, input, 3*hidden]`, ``weight_hh`` `[n, hidden, 3*hidden]`, ``bias_ih``,
    ``bias_hh`` `[n, 3*hidden]`.
    """

    gates = 3

    def forward(self, x: Tensor, h: Tensor, hh: Tensor | None = None) -> Tensor:
        """One step of every group.

        Args:
            x: `[B, n, input]` input of each group.
            h: `[B, n, hidden]` previous hidden state.
            hh: `[B, n, 3*hidden]` precomputed :meth:`recurrent_gates` of ``h``, or None to compute it.

        Returns:
            `[B, n, hidden]` next hidden state.
        """
        if hh is None:
            hh = self.recurrent_gates(h)
        xr, xz, xn = self.input_gates(x).chunk(3, dim=-1)
        hr, hz, hn = hh.chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return n + z * (h - n)  # = (1 - z) * n + z * h
