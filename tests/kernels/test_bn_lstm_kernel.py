"""The BN-LSTM kernel (``kernels.bn_lstm``, with ``kernels.onednn``) against the step loop of the equations.

Values, gradients (also of the initial state) and running statistics, padded and not; a gradcheck of the
hand-written backward; float32 with oneDNN against plain matmuls; pooled workspaces shared by graphs alive at
once, a retained graph, inputs left untouched; the intra-op thread count restored.
"""

from __future__ import annotations

import copy

import pytest
import torch

import mnemonet.kernels.onednn as onednn_mod
from bn_lstm_reference import VARIANTS, H, I, close, make, run
from mnemonet.kernels import tricks, workspaces
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


def _grads(model, x, lengths=None):
    y, s = model(x, lengths=lengths)
    return torch.autograd.grad((y * y).sum() + s.c.sum(), [x, *model.parameters()])


def test_pooled_workspaces_keep_graphs_apart():
    """Two graphs alive at once, and a later call reusing a freed workspace, get the gradients of separate runs."""
    model = bn_lstm(I, H, 6).double()
    xs = [torch.randn(5, 6, I, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    alone = []
    for x in xs:
        workspaces.release_workspaces()
        alone.append(_grads(copy.deepcopy(model), x))
    outs = [model(x) for x in xs[:2]]  # both forwards hold a workspace until their graphs go
    together = [torch.autograd.grad((y * y).sum() + s.c.sum(), [x, *model.parameters()])
                for (y, s), x in zip(outs[::-1], xs[1::-1], strict=True)][::-1]  # fmt: skip
    del outs
    together.append(_grads(model, xs[2]))  # takes a workspace given back above
    for a, b in zip(alone, together, strict=True):
        for u, v in zip(a, b, strict=True):
            torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_backward_twice_with_retained_graph_and_inputs_untouched():
    model = bn_lstm(I, H, 6).double()
    x = torch.randn(5, 6, I, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([6, 2, 5, 6, 1])
    before = [p.detach().clone() for p in (x, *model.parameters())]
    y, s = model(x, lengths=lengths)
    loss = (y * y).sum() + s.c.sum()
    first = torch.autograd.grad(loss, [x, *model.parameters()], retain_graph=True)
    second = torch.autograd.grad(loss, [x, *model.parameters()])
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(before, (x, *model.parameters()), strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("serial", [True, False])
def test_step_threads_leave_the_thread_count_and_the_numbers(serial, monkeypatch):
    """With 2 intra-op threads the loop's small ops run on one (tricks.StepThreads); the count comes back."""
    monkeypatch.setattr(tricks, "SERIAL_STEPS", serial)
    model = bn_lstm(5, 8, 6).train()
    x = torch.randn(7, 9, 5, requires_grad=True)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        got = _grads(copy.deepcopy(model), x, torch.tensor([9, 4, 9, 2, 7, 9, 5]))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    want = _grads(copy.deepcopy(model), x, torch.tensor([9, 4, 9, 2, 7, 9, 5]))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
