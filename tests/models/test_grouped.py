"""Grouped layers: one batched matmul equals n separate linear maps / torch cells, group by group."""

from __future__ import annotations

import pytest
import torch

from mnemonet.models.grouped import GroupedGRUCell, GroupedLinear, GroupedLSTMCell, grouped_matmul

B, N, IN, OUT = 3, 4, 5, 6


def test_grouped_matmul_equals_a_loop_over_groups():
    torch.manual_seed(0)
    x, w, b = torch.randn(B, N, IN), torch.randn(N, IN, OUT), torch.randn(N, OUT)
    want = torch.stack([x[:, g] @ w[g] + b[g] for g in range(N)], 1)  # (B, N, OUT)
    torch.testing.assert_close(grouped_matmul(x, w, b), want)
    want_nobias = torch.stack([x[:, g] @ w[g] for g in range(N)], 1)
    torch.testing.assert_close(grouped_matmul(x, w), want_nobias)


def test_grouped_linear_is_block_diagonal():
    torch.manual_seed(0)
    layer = GroupedLinear(N, IN, OUT)
    x = torch.randn(B, N, IN)
    x2 = x.clone()
    x2[:, 2] += 1.0
    diff = (layer(x2) - layer(x)).abs().amax(dim=(0, 2))  # (N,)
    assert diff[2] > 0
    assert torch.equal(diff[[0, 1, 3]], torch.zeros(3))


def test_grouped_linear_gradcheck():
    torch.manual_seed(0)
    layer = GroupedLinear(N, IN, OUT).double()
    x = torch.randn(2, N, IN, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: grouped_matmul(x, w, b), (x, layer.weight, layer.bias))


def test_grouped_lstm_equals_n_torch_lstm_cells():
    torch.manual_seed(0)
    cell = GroupedLSTMCell(N, IN, OUT)
    x, h, c = torch.randn(B, N, IN), torch.randn(B, N, OUT), torch.randn(B, N, OUT)
    h_new, c_new = cell(x, h, c)
    for g in range(N):
        ref = torch.nn.LSTMCell(IN, OUT)
        with torch.no_grad():
            ref.weight_ih.copy_(cell.weight_ih[g].T)
            ref.weight_hh.copy_(cell.weight_hh[g].T)
            ref.bias_ih.copy_(cell.bias_ih[g])
            ref.bias_hh.copy_(cell.bias_hh[g])
        h_ref, c_ref = ref(x[:, g], (h[:, g], c[:, g]))
        torch.testing.assert_close(h_new[:, g], h_ref)
        torch.testing.assert_close(c_new[:, g], c_ref)
    # the precomputed recurrent term gives the same step
    h2, c2 = cell(x, h, c, hh=cell.recurrent_gates(h))
    assert torch.equal(h2, h_new) and torch.equal(c2, c_new)


def test_grouped_gru_equals_n_torch_gru_cells():
    torch.manual_seed(0)
    cell = GroupedGRUCell(N, IN, OUT)
    x, h = torch.randn(B, N, IN), torch.randn(B, N, OUT)
    h_new = cell(x, h)
    for g in range(N):
        ref = torch.nn.GRUCell(IN, OUT)
        with torch.no_grad():
            ref.weight_ih.copy_(cell.weight_ih[g].T)
            ref.weight_hh.copy_(cell.weight_hh[g].T)
            ref.bias_ih.copy_(cell.bias_ih[g])
            ref.bias_hh.copy_(cell.bias_hh[g])
        torch.testing.assert_close(h_new[:, g], ref(x[:, g], h[:, g]))


def test_grouped_cells_gradcheck():
    torch.manual_seed(0)
    lstm = GroupedLSTMCell(2, 3, 2).double()
    gru = GroupedGRUCell(2, 3, 2).double()
    x = torch.randn(2, 2, 3, dtype=torch.double, requires_grad=True)
    h = torch.randn(2, 2, 2, dtype=torch.double, requires_grad=True)
    c = torch.randn(2, 2, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, h, c: lstm(x, h, c), (x, h, c))
    assert torch.autograd.gradcheck(lambda x, h: gru(x, h), (x, h))


def test_parameter_layout():
    cell = GroupedLSTMCell(N, IN, OUT)
    assert cell.weight_ih.shape == (N, IN, 4 * OUT)
    assert cell.weight_hh.shape == (N, OUT, 4 * OUT)
    assert cell.bias_ih.shape == cell.bias_hh.shape == (N, 4 * OUT)
    assert GroupedGRUCell(N, IN, OUT).weight_hh.shape == (N, OUT, 3 * OUT)
    assert GroupedLinear(N, IN, OUT, bias=False).bias is None


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_groups"):
        GroupedLinear(0, IN, OUT)
    with pytest.raises(ValueError, match="hidden_size"):
        GroupedLSTMCell(N, IN, -1)
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 4, 5\)"):
        GroupedLinear(N, IN, OUT)(torch.zeros(B, N + 1, IN))
