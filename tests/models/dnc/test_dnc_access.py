"""The DNC's interface split and memory step: nonlinearities, fused vs composed, gradcheck, options, safety."""

import pytest
import torch

from dnc_access_reference import B, D, N, R, W, flat, random_state
from mnemonet.kernels.dnc_access import FusedAccessStep
from mnemonet.models.dnc import addressing as A
from mnemonet.models.dnc.access import (
    AccessState,
    LinkState,
    MemoryAccess,
    SparseLinkState,
    access_step,
    initial_access_state,
)
from mnemonet.models.dnc.interface import interface_size, split_interface


def test_interface_size_is_the_papers():
    assert interface_size(W, R) == R * W + 3 * W + 5 * R + 3
    assert (
        interface_size(W, R, key_masking=True, link_sharpness=True) == R * W + 3 * W + 5 * R + 3 + (R + 1) * W + 2 * R
    )


def test_split_interface_applies_the_papers_nonlinearities():
    xi = torch.randn(B, interface_size(W, R), dtype=D) * 10
    it = split_interface(xi, W, R)
    assert it.read_keys.shape == (B, R, W) and it.write_keys.shape == (B, 1, W)
    assert (it.read_strengths >= 1).all() and (it.write_strengths >= 1).all()
    for gate in (it.erase_vectors, it.free_gates, it.allocation_gates, it.write_gates):
        assert ((gate >= 0) & (gate <= 1)).all()
    torch.testing.assert_close(it.read_modes.sum(-1), torch.ones(B, R, dtype=D))
    assert it.read_masks is None and it.forward_sharpness is None
    # keys and write vectors are raw (no squashing): large inputs come through unchanged
    raw = xi[:, : R * W].reshape(B, R, W)
    torch.testing.assert_close(it.read_keys, raw)
    opt = split_interface(torch.randn(B, interface_size(W, R, 2, True, True)), W, R, 2, True, True)
    assert opt.read_masks.shape == (B, R, W) and opt.write_masks.shape == (B, 2, W)
    assert opt.forward_sharpness.shape == (B, R) and (opt.backward_sharpness >= 1).all()
    assert opt.read_modes.shape == (B, R, 5)


def test_split_interface_rejects_wrong_size():
    with pytest.raises(ValueError, match="xi"):
        split_interface(torch.randn(B, 7), W, R)


def test_gradcheck_whole_access_step_fused_and_composed():
    xi = torch.randn(B, interface_size(W, R), dtype=D, requires_grad=True)
    leaves = [t.requires_grad_() for t in flat(random_state())]
    assert torch.autograd.gradcheck(lambda *a: FusedAccessStep.apply(*a, R, W)[:7], (xi, *leaves))

    def composed(xi, M, u, L, p, wr, ww):
        r, s, _ = access_step(split_interface(xi, W, R), AccessState(M, u, LinkState(L, p), wr, ww))
        return (r, *flat(s))

    assert torch.autograd.gradcheck(composed, (xi, *leaves))


@pytest.mark.parametrize("options", [dict(key_masking=True), dict(link_sharpness=True), dict(num_writes=2)])
def test_gradcheck_access_step_with_options(options):
    hw = options.get("num_writes", 1)
    km, ls = options.get("key_masking", False), options.get("link_sharpness", False)
    xi = torch.randn(B, interface_size(W, R, hw, km, ls), dtype=D, requires_grad=True)
    leaves = [t.requires_grad_() for t in flat(random_state(hw))]

    def step(xi, M, u, L, p, wr, ww):
        it = split_interface(xi, W, R, hw, km, ls)
        r, s, _ = access_step(it, AccessState(M, u, LinkState(L, p), wr, ww), deallocation=True)
        return (r, *flat(s))

    assert torch.autograd.gradcheck(step, (xi, *leaves))


def test_gradcheck_sparse_access_step():
    K = 3
    xi = torch.randn(B, interface_size(W, R), dtype=D, requires_grad=True)
    s0 = random_state()
    vals = torch.rand(B, 1, N, K, dtype=D, requires_grad=True)
    idx = torch.stack([torch.randperm(N)[:K] for _ in range(B * N)]).reshape(B, 1, N, K).to(D)
    M, u, wr, ww, p = (t.requires_grad_() for t in (s0.memory, s0.usage, s0.read_weights, s0.write_weights, s0.link[1]))

    def step(xi, M, u, vals, p, wr, ww):
        r, s, _ = access_step(split_interface(xi, W, R), AccessState(M, u, SparseLinkState(vals, idx, p), wr, ww))
        return r, s.memory, s.link.values, s.link.precedence, s.read_weights

    assert torch.autograd.gradcheck(step, (xi, M, u, vals, p, wr, ww))


@pytest.mark.parametrize("fused", [True, False])
def test_no_nan_or_inf_with_zero_memory_zero_keys_saturated_gates(fused):
    access = MemoryAccess(8, N, W, R, deallocation=not fused)
    assert access.uses_fused_step == fused
    state = access.initial_state(B)  # zero memory, usage, weightings
    with torch.no_grad():
        access.interface.weight.zero_()
        access.interface.bias.copy_(torch.where(torch.rand(access.interface.bias.shape) < 0.5, -1e4, 1e4))
    h = torch.zeros(B, 8, requires_grad=True)
    total = 0.0
    for _ in range(4):
        r, state, _ = access(h, state)
        total = total + r.sum() + state.usage.sum() + state.link.link.sum()
    total.backward()
    assert torch.isfinite(total)
    for g in [h.grad, access.interface.weight.grad, access.interface.bias.grad]:
        assert torch.isfinite(g).all()


def test_options_change_the_step_and_are_off_by_default():
    torch.manual_seed(3)
    s = random_state(dtype=torch.float32)
    base = MemoryAccess(5, N, W, R)
    h = torch.randn(B, 5)
    _r0, s0, _ = base(h, s)
    dealloc = MemoryAccess(5, N, W, R, deallocation=True)
    dealloc.load_state_dict(base.state_dict())
    _r1, s1, _ = dealloc(h, s)
    assert not torch.allclose(s0.memory, s1.memory)  # freed slots lose content
    it = split_interface(base.interface(h), W, R)
    psi = A.retention(it.free_gates, s.read_weights)
    ww = s0.write_weights
    expected = A.erase_and_write(s.memory, ww, it.erase_vectors, it.write_vectors, psi)
    torch.testing.assert_close(s1.memory, expected)
    masked = MemoryAccess(5, N, W, R, key_masking=True)
    assert masked.interface.out_features == base.interface.out_features + (R + 1) * W
    sharp = MemoryAccess(5, N, W, R, link_sharpness=True)
    r, _s2, info = sharp(h, s, with_info=True)
    assert torch.isfinite(r).all() and info.read_modes.shape == (B, R, 3)


def test_sparse_option_keeps_n_k_memory():
    acc = MemoryAccess(5, 32, W, R, link_top_k=4)
    st = acc.initial_state(2)
    assert isinstance(st.link, SparseLinkState) and st.link.values.shape == (2, 1, 32, 4)
    h = torch.randn(2, 5)
    for _ in range(3):
        r, st, _ = acc(h, st)
    assert st.link.values.shape == (2, 1, 32, 4) and torch.isfinite(r).all()


def test_initial_state_shapes_and_bad_arguments():
    s = initial_access_state(2, N, W, R, num_writes=2)
    assert s.memory.shape == (2, N, W) and s.link.link.shape == (2, 2, N, N) and s.write_weights.shape == (2, 2, N)
    with pytest.raises(ValueError, match="memory_size"):
        MemoryAccess(4, 0, W, R)
    with pytest.raises(ValueError, match="link_top_k"):
        MemoryAccess(4, N, W, R, link_top_k=-1)
