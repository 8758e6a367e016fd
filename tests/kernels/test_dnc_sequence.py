"""The whole-sequence DNC node (``sequence.DNCSequence``): gradcheck, padding, no_grad, and the model's use of it.

Each test runs twice: with the memory step in C (``kernels.native``) and in torch (``kernels.dnc_access``).
"""

import pytest
import torch

from mnemonet.kernels import native
from mnemonet.kernels.dnc_sequence import DNCSequence
from mnemonet.models import state as st
from mnemonet.models.cells import LSTMCell
from mnemonet.models.dnc import build_dnc
from mnemonet.models.dnc.interface import interface_size

D = torch.float64
B, T, H, N, W, R = 3, 4, 3, 4, 2, 2


@pytest.fixture(autouse=True, params=["c", "torch"])
def memory_step(request, monkeypatch):
    """Every test here runs with the C memory step (``kernels.native``, where it builds) and with torch's."""
    if request.param == "torch":
        monkeypatch.setattr(native, "functions", lambda dtype: None)
    elif native.library() is None:
        pytest.skip(f"no C kernels: {native.unavailable_reason()}")


def inputs(seed=0):
    """Random float64 inputs of ``DNCSequence`` with a valid memory state (usage in (0, 1), weightings ≤ 1)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=D) * scale).requires_grad_()

    Z = interface_size(W, R)
    L = torch.rand(B, N, N, generator=g, dtype=D) / N
    L.diagonal(dim1=1, dim2=2).zero_()
    return [
        rnd(T, B, 4 * H),  # pre
        rnd(4 * H, H + R * W, scale=0.5),  # W_hr
        rnd(Z, H, scale=0.5),  # W_ξ
        rnd(Z, scale=0.5),  # b_ξ
        rnd(B, H),
        rnd(B, H),
        rnd(B, R, W),
        rnd(B, N, W),
        torch.rand(B, N, generator=g, dtype=D).mul(0.8).add(0.1).requires_grad_(),
        L.requires_grad_(),
        torch.softmax(torch.randn(B, N, generator=g, dtype=D), -1).mul(0.5).requires_grad_(),
        torch.softmax(torch.randn(B, R, N, generator=g, dtype=D), -1).requires_grad_(),
        torch.softmax(torch.randn(B, N, generator=g, dtype=D), -1).mul(0.5).requires_grad_(),
    ]


@pytest.mark.parametrize("last", [None, torch.tensor([3, 0, 2])])
def test_gradcheck_whole_sequence_with_and_without_padding(last):
    def run(*args):
        return DNCSequence.apply(*args, last, (R, W), True)

    assert torch.autograd.gradcheck(run, tuple(inputs()), atol=1e-6)


def test_final_state_of_a_padded_row_is_its_state_after_its_last_step():
    args = inputs(1)
    full = DNCSequence.apply(*args, None, (R, W), True)
    last = torch.tensor([3, 1, 0])
    padded = DNCSequence.apply(*args, last, (R, W), True)
    torch.testing.assert_close(padded[0], full[0])  # HR: every step runs
    for b, n in enumerate(last.tolist()):
        short = DNCSequence.apply(*(a[: n + 1] if i == 0 else a for i, a in enumerate(args)), None, (R, W), True)
        for x, y in zip(padded[1:], short[1:], strict=True):  # c, M, u, L, p, w^r, w^w
            torch.testing.assert_close(x[b], y[b])


def test_no_grad_keeps_nothing_and_gives_the_same_values():
    args = inputs(2)
    with_grad = DNCSequence.apply(*args, None, (R, W), True)
    with torch.no_grad():
        without = DNCSequence.apply(*args, None, (R, W), False)
    for x, y in zip(with_grad, without, strict=True):
        torch.testing.assert_close(x, y)
        assert not y.requires_grad


def test_model_uses_the_node_and_two_graphs_stay_independent():
    torch.manual_seed(0)
    model = build_dnc(input_size=5, output_size=3, hidden_size=8, memory_size=6, word_size=4, num_reads=2).double()
    x1, x2 = torch.randn(2, 5, 5, dtype=D), torch.randn(2, 5, 5, dtype=D)
    y1, s1 = model(x1)
    assert type(y1.grad_fn).__name__ != "StackBackward0"  # the whole-sequence path ran (not the step loop)
    y2, _ = model(x2, s1)  # the second call continues from the first call's state
    loss = (y1**2).sum() + (y2**3).sum()
    grads = torch.autograd.grad(loss, list(model.parameters()))
    y1_loop, s1_loop, _ = model(x1, return_states=True)  # Recurrent's step loop, fused steps
    y2_loop, _, _ = model(x2, s1_loop, return_states=True)
    loop = torch.autograd.grad((y1_loop**2).sum() + (y2_loop**3).sum(), list(model.parameters()))
    for a, b in zip(grads, loop, strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(st.tree_leaves(s1), st.tree_leaves(s1_loop), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("bias", [dict(bias=False), dict(single_bias=True)])
def test_node_matches_step_loop_for_controllers_without_two_biases(bias):
    torch.manual_seed(1)
    controller = LSTMCell(5 + 2 * 4, 8, **bias)
    model = build_dnc(
        input_size=5, output_size=3, hidden_size=None, memory_size=6, word_size=4, num_reads=2, controller=controller
    ).double()
    x = torch.randn(2, 4, 5, dtype=D)
    y, s = model(x, lengths=torch.tensor([4, 2]))
    y_loop, s_loop, _ = model(x, lengths=torch.tensor([4, 2]), return_states=True)
    torch.testing.assert_close(y, y_loop)
    for a, b in zip(st.tree_leaves(s), st.tree_leaves(s_loop), strict=True):
        torch.testing.assert_close(a, b)
    g = torch.autograd.grad((y**2).sum(), list(model.parameters()))
    g_loop = torch.autograd.grad((y_loop**2).sum(), list(model.parameters()))
    for a, b in zip(g, g_loop, strict=True):
        torch.testing.assert_close(a, b)


def test_workspaces_are_reused_and_never_shared_by_live_graphs():
    from mnemonet.kernels import dnc_sequence as sequence

    torch.manual_seed(2)
    model = build_dnc(input_size=5, output_size=3, hidden_size=8, memory_size=6, word_size=4, num_reads=2).double()
    params = list(model.parameters())
    x, other = torch.randn(2, 5, 5, dtype=D), torch.randn(2, 5, 5, dtype=D)

    def grads(inp):
        y, _ = model(inp)
        return torch.autograd.grad((y**2).sum(), params)

    expected = grads(x)
    sequence._FORWARD_POOL.free.clear()
    with torch.no_grad():
        model(other)
    (_, kept), *_ = sequence._FORWARD_POOL.free  # handed back at the end of a no_grad forward
    with torch.no_grad():
        model(other)
    assert sequence._FORWARD_POOL.free[0][1] is kept  # and taken again by the next call of that shape

    y, _ = model(x)  # holds a workspace until its graph is freed, through retain_graph and other calls
    first = torch.autograd.grad((y**2).sum(), params, retain_graph=True)
    for _ in range(3):
        grads(other)
        with torch.no_grad():
            model(other)
    second = torch.autograd.grad((y**2).sum(), params)
    for a, b, c in zip(expected, first, second, strict=True):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, c)
    assert len(sequence._FORWARD_POOL.free) <= 2
    sequence.release_workspaces()
    assert not sequence._FORWARD_POOL.free and not sequence._BACKWARD_POOL.free


def test_big_workspaces_are_not_kept(monkeypatch):
    from mnemonet.kernels import dnc_sequence as sequence

    sequence.release_workspaces()
    monkeypatch.setattr(sequence._FORWARD_POOL, "max_bytes", 1)
    monkeypatch.setattr(sequence._BACKWARD_POOL, "max_bytes", 1)
    model = build_dnc(input_size=5, output_size=3, hidden_size=8, memory_size=6, word_size=4, num_reads=2).double()
    y, _ = model(torch.randn(2, 5, 5, dtype=D))
    y.sum().backward()
    del y
    assert not sequence._FORWARD_POOL.free and not sequence._BACKWARD_POOL.free


def test_float32_node_matches_step_loop():
    torch.manual_seed(3)
    model = build_dnc(input_size=5, output_size=3, hidden_size=16, memory_size=8, word_size=4, num_reads=2)
    x = torch.randn(4, 6, 5)
    y, _ = model(x)
    y_loop, _, _ = model(x, return_states=True)
    torch.testing.assert_close(y, y_loop)
    params = list(model.parameters())
    grads = torch.autograd.grad((y**2).sum(), params)
    loop = torch.autograd.grad((y_loop**2).sum(), params)
    for a, b in zip(grads, loop, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
