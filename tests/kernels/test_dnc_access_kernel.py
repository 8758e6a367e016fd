"""The DNC's fused memory step (``kernels.dnc_access.FusedAccessStep``) against ``access_step``, the equations.

Values and gradients, in-place gradient accumulation that never touches a caller's tensors, and usage ties.
"""

import torch

from dnc_access_reference import B, D, N, R, W, flat, random_state
from mnemonet.kernels.dnc_access import FusedAccessStep
from mnemonet.models.dnc.access import AccessState, LinkState, MemoryAccess, access_step, initial_access_state
from mnemonet.models.dnc.interface import interface_size, split_interface


def test_fused_step_equals_composed_step_values_and_gradients():
    xi = torch.randn(B, interface_size(W, R), dtype=D, requires_grad=True)
    leaves = [t.requires_grad_() for t in flat(random_state())]

    def composed(xi, M, u, L, p, wr, ww):
        r, s, _ = access_step(split_interface(xi, W, R), AccessState(M, u, LinkState(L, p), wr, ww))
        return (r, *flat(s))

    def fused(xi, M, u, L, p, wr, ww):
        return FusedAccessStep.apply(xi, M, u, L, p, wr, ww, R, W)[:7]

    out_c, out_f = composed(xi, *leaves), fused(xi, *leaves)
    weights = [torch.randn_like(o) for o in out_c]
    grads_c = torch.autograd.grad(sum((o * w).sum() for o, w in zip(out_c, weights, strict=True)), [xi, *leaves])
    grads_f = torch.autograd.grad(sum((o * w).sum() for o, w in zip(out_f, weights, strict=True)), [xi, *leaves])
    for a, b in zip(out_c, out_f, strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(grads_c, grads_f, strict=True):
        torch.testing.assert_close(a, b)


def test_backward_never_modifies_caller_gradients():
    access = MemoryAccess(5, N, W, R)
    assert access.uses_fused_step
    state = random_state(dtype=torch.float32)
    h = torch.randn(B, 5, requires_grad=True)
    for _ in range(3):
        r, state, _ = access(h, state)
    g_mem, g_link = torch.randn_like(state.memory), torch.randn_like(state.link.link)
    keep = g_mem.clone(), g_link.clone()
    torch.autograd.backward([r, state.memory, state.link.link], [torch.ones_like(r), g_mem, g_link])
    torch.testing.assert_close((g_mem, g_link), keep)
    assert torch.isfinite(h.grad).all()


def test_shared_gradients_are_not_corrupted_by_in_place_accumulation():
    # memory of step 2 is (step-1 memory) + (a leaf): autograd hands one gradient tensor to both inputs
    torch.manual_seed(1)
    access = MemoryAccess(5, N, W, R).double()
    h = torch.randn(B, 5, dtype=D)
    extra = torch.randn(B, N, W, dtype=D, requires_grad=True)

    def run(step):
        state = random_state()
        _, s1 = step(h, state)
        s1 = s1._replace(memory=s1.memory + extra)
        r2, s2 = step(h, s1)
        _, s3 = step(h, s2)
        return (r2.sum() + s3.memory.square().sum() + s3.link.link.sum()), extra

    def fused(h, s):
        return access(h, s)[:2]

    def composed(h, s):
        r, new, _ = access_step(split_interface(access.interface(h), W, R), s)
        return r, new

    torch.manual_seed(2)
    loss_f, _ = run(fused)
    g_f = torch.autograd.grad(loss_f, [extra, *access.parameters()])
    torch.manual_seed(2)
    loss_c, _ = run(composed)
    g_c = torch.autograd.grad(loss_c, [extra, *access.parameters()])
    for a, b in zip(g_f, g_c, strict=True):
        torch.testing.assert_close(a, b)


def test_fused_step_breaks_usage_ties_like_the_composed_step():
    R, W, N = 2, 3, 6
    g = torch.Generator().manual_seed(3)
    xi = torch.randn(2, interface_size(W, R), generator=g, dtype=torch.float64)
    state = initial_access_state(2, N, W, R, dtype=torch.float64)  # every usage 0: all slots tie
    state = state._replace(usage=torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0, 0.9]] * 2, dtype=torch.float64))
    fused = FusedAccessStep.apply(
        xi, state.memory, state.usage, state.link.link, state.link.precedence, state.read_weights,
        state.write_weights, R, W,
    )  # fmt: skip
    _, composed, info = access_step(split_interface(xi, W, R), state)
    torch.testing.assert_close(fused[7], info.allocation)
    torch.testing.assert_close(fused[6], composed.write_weights)
