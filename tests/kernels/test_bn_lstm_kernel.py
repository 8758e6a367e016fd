"""The BN-LSTM kernel (``kernels.bn_lstm``, with ``kernels.onednn``) against the step loop of the equations.

Values, gradients (also of the initial state) and running statistics, padded and not; a gradcheck of the
hand-written backward; float32 with oneDNN against plain matmuls.
"""

from __future__ import annotations

import copy

import pytest
import torch

import mnemonet.kernels.onednn as onednn_mod
from bn_lstm_reference import VARIANTS, H, I, close, make, run
from mnemonet.models.bn_lstm import bn_lstm
from mnemonet.models.cells import LSTMState


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("padded", [False, True])
def test_sequence_path_equals_step_path(variant, training, padded):
    model = make(variant).train(training)
    x = torch.randn(6, 7, I, dtype=torch.float64)
    lengths = torch.tensor([7, 3, 5, 7, 1, 6]) if padded else None
    state = LSTMState(torch.randn(6, H, dtype=torch.float64), torch.randn(6, H, dtype=torch.float64))
    fast = run(copy.deepcopy(model), x, lengths, "fast", state)
    step = run(copy.deepcopy(model), x, lengths, "step", state)
    close(fast[0], step[0])
    close(fast[1].h, step[1].h)
    close(fast[1].c, step[1].c)
    for k in fast[2]:
        close(fast[2][k], step[2][k], 1e-9)
    for k in fast[3]:
        close(fast[3][k].double(), step[3][k].double())


@pytest.mark.parametrize("variant", VARIANTS)
def test_initial_state_gets_gradients(variant):
    model = make(variant).train()
    x = torch.randn(4, 5, I, dtype=torch.float64)
    grads = []
    start = torch.randn(2, 4, H, dtype=torch.float64)
    for path in ("fast", "step"):
        h0, c0 = start[0].clone().requires_grad_(), start[1].clone().requires_grad_()
        run(copy.deepcopy(model), x, torch.tensor([5, 2, 4, 5]), path, LSTMState(h0, c0))
        grads.append((h0.grad, c0.grad))
    close(grads[0][0], grads[1][0])
    close(grads[0][1], grads[1][1])
    assert grads[0][0].abs().sum() > 0 and grads[0][1].abs().sum() > 0


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_sequence_path(variant, training):
    """The hand-written backward of the sequence path against finite differences (float64)."""
    torch.manual_seed(3)
    model = make(variant).train(training)
    names = [k for k, _ in model.named_parameters()]
    x = torch.randn(4, 3, I, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, H, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(4, H, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([3, 2, 3, 2])
    params = [p.detach().clone().requires_grad_() for p in model.parameters()]

    def f(x, h0, c0, *ps):
        y, s = torch.func.functional_call(
            model, dict(zip(names, ps, strict=True)), (x,), {"state": LSTMState(h0, c0), "lengths": lengths}
        )
        return y, s.h, s.c

    assert torch.autograd.gradcheck(f, (x, h0, c0, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_float32_kernels_match_plain_matmul(variant, monkeypatch):
    model = bn_lstm(5, 8, 6, variant=variant).train()
    x = torch.randn(7, 9, 5)
    lengths = torch.tensor([9, 4, 9, 2, 7, 9, 5])
    a = run(copy.deepcopy(model), x, lengths)
    monkeypatch.setattr(onednn_mod, "USE_ONEDNN", False)
    b = run(copy.deepcopy(model), x, lengths)
    torch.testing.assert_close(a[0], b[0], rtol=1e-4, atol=1e-5)
    for k in a[2]:
        torch.testing.assert_close(a[2][k], b[2][k], rtol=1e-3, atol=1e-4)
