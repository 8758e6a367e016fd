"""The DNC's addressing functions against plain-loop references, hand-built scenarios and gradcheck."""

import math

import pytest
import torch

from mnemonet.models.dnc import addressing as A
from mnemonet.models.dnc.sparse_link import densify, sparse_directional_weights, sparse_link

D = torch.float64


def rand_dist(*shape, scale=1.0):
    return torch.softmax(torch.randn(*shape, dtype=D), -1) * scale


# ---------------------------------------------------------------- loop references


def test_content_weights_matches_loop():
    B, H, N, W = 2, 3, 5, 4
    M, k, beta = torch.randn(B, N, W, dtype=D), torch.randn(B, H, W, dtype=D), 1 + torch.rand(B, H, dtype=D) * 3
    M[0, 2] = 0  # a zero row
    got = A.content_weights(M, k, beta)
    eps = A.EPSILON
    for b in range(B):
        for h in range(H):
            scores = []
            for i in range(N):
                dot = sum(k[b, h, w] * M[b, i, w] for w in range(W))
                nk = math.sqrt(sum(k[b, h, w] ** 2 for w in range(W)) + eps)
                nm = math.sqrt(sum(M[b, i, w] ** 2 for w in range(W)) + eps)
                scores.append(float(beta[b, h]) * float(dot) / (nk * nm))
            z = sum(math.exp(s) for s in scores)
            for i in range(N):
                assert got[b, h, i].item() == pytest.approx(math.exp(scores[i]) / z, abs=1e-12)


def test_masked_cosine_matches_masking_both_sides():
    B, H, N, W = 2, 3, 5, 4
    M, k, m = torch.randn(B, N, W, dtype=D), torch.randn(B, H, W, dtype=D), torch.rand(B, H, W, dtype=D)
    got = A.cosine_similarity(M, k, m)
    for h in range(H):
        ref = A.cosine_similarity(M * m[:, h : h + 1], k[:, h : h + 1] * m[:, h : h + 1])
        torch.testing.assert_close(got[:, h : h + 1], ref)


def test_retention_usage_match_loops():
    B, R, N = 2, 3, 6
    f, wr = torch.rand(B, R, dtype=D), rand_dist(B, R, N)
    u, ww = torch.rand(B, N, dtype=D), rand_dist(B, 1, N)
    psi = A.retention(f, wr)
    new_u = A.usage(u, ww, psi)
    for b in range(B):
        for i in range(N):
            ref_psi = 1.0
            for r in range(R):
                ref_psi *= 1 - f[b, r].item() * wr[b, r, i].item()
            assert psi[b, i].item() == pytest.approx(ref_psi)
            w = ww[b, 0, i].item()
            assert new_u[b, i].item() == pytest.approx((u[b, i].item() + w - u[b, i].item() * w) * ref_psi)


def test_usage_with_two_write_heads_combines_them():
    u, ww, psi = torch.rand(2, 5, dtype=D), rand_dist(2, 2, 5), torch.ones(2, 5, dtype=D)
    joint = 1 - (1 - ww[:, 0]) * (1 - ww[:, 1])
    torch.testing.assert_close(A.usage(u, ww, psi), u + joint - u * joint)


@pytest.mark.parametrize("ties", [False, True])
def test_allocation_matches_loop(ties):
    B, N = 3, 7
    u = torch.rand(B, N, dtype=D)
    if ties:  # equal usages (unused slots, saturated ones): the lower slot comes first, as in a stable sort
        u[:, ::2] = 0.0
        u[:, 1] = u[:, 5] = 0.5
    got = A.allocation(u)
    for b in range(B):
        uu = [A.EPSILON + (1 - A.EPSILON) * x for x in u[b].tolist()]
        order = sorted(range(N), key=lambda i: uu[i])
        prod = 1.0
        for j in order:
            assert got[b, j].item() == pytest.approx((1 - uu[j]) * prod, abs=1e-12)
            prod *= uu[j]


def test_write_weights_erase_write_precedence_match_loops():
    B, N, W = 2, 5, 3
    a, c = rand_dist(B, 1, N), rand_dist(B, 1, N)
    ga, gw = torch.rand(B, 1, dtype=D), torch.rand(B, 1, dtype=D)
    ww = A.write_weights(a, c, ga, gw)
    M, e, v = torch.randn(B, N, W, dtype=D), torch.rand(B, 1, W, dtype=D), torch.randn(B, 1, W, dtype=D)
    p = rand_dist(B, 1, N, scale=0.7)
    M2, p2 = A.erase_and_write(M, ww, e, v), A.precedence(p, ww)
    for b in range(B):
        for i in range(N):
            w = gw[b, 0] * (ga[b, 0] * a[b, 0, i] + (1 - ga[b, 0]) * c[b, 0, i])
            assert ww[b, 0, i].item() == pytest.approx(w.item())
            assert p2[b, 0, i].item() == pytest.approx(((1 - ww[b, 0].sum()) * p[b, 0, i] + ww[b, 0, i]).item())
            for k in range(W):
                ref = M[b, i, k] * (1 - ww[b, 0, i] * e[b, 0, k]) + ww[b, 0, i] * v[b, 0, k]
                assert M2[b, i, k].item() == pytest.approx(ref.item())


def test_link_and_directional_weights_match_loops():
    B, N, R = 2, 5, 3
    L = torch.rand(B, 1, N, N, dtype=D) * (1 - torch.eye(N, dtype=D)) / N
    ww, p, wr = rand_dist(B, 1, N), rand_dist(B, 1, N, scale=0.8), rand_dist(B, R, N)
    L2 = A.link(L, ww, p)
    fwd, bwd = A.directional_weights(L2, wr)
    for b in range(B):
        for i in range(N):
            for j in range(N):
                ref = 0.0 if i == j else (1 - ww[b, 0, i] - ww[b, 0, j]) * L[b, 0, i, j] + ww[b, 0, i] * p[b, 0, j]
                assert L2[b, 0, i, j].item() == pytest.approx(float(ref))
        for r in range(R):
            for i in range(N):
                assert fwd[b, 0, r, i].item() == pytest.approx(
                    sum(L2[b, 0, i, j] * wr[b, r, j] for j in range(N)).item()
                )
                assert bwd[b, 0, r, i].item() == pytest.approx(
                    sum(L2[b, 0, j, i] * wr[b, r, j] for j in range(N)).item()
                )


def test_read_weights_and_vectors_match_loops():
    B, R, N, W = 2, 3, 5, 4
    pi = torch.softmax(torch.randn(B, R, 3, dtype=D), -1)
    c, f, b_ = rand_dist(B, R, N), rand_dist(B, 1, R, N), rand_dist(B, 1, R, N)
    wr = A.read_weights(pi, c, f, b_)
    M = torch.randn(B, N, W, dtype=D)
    r = A.read_vectors(M, wr)
    for bb in range(B):
        for h in range(R):
            ref = pi[bb, h, 0] * b_[bb, 0, h] + pi[bb, h, 1] * c[bb, h] + pi[bb, h, 2] * f[bb, 0, h]
            torch.testing.assert_close(wr[bb, h], ref)
            torch.testing.assert_close(r[bb, h], sum(wr[bb, h, i] * M[bb, i] for i in range(N)))


def test_sharpen_matches_power_and_normalise():
    d, s = rand_dist(2, 3, 6), 1 + torch.rand(2, 3, dtype=D) * 4
    ref = (d + A.EPSILON) ** s[..., None]
    torch.testing.assert_close(A.sharpen(d, s), ref / ref.sum(-1, keepdim=True))
    assert (A.sharpen(d, s).max(-1).values >= d.max(-1).values / d.sum(-1) - 1e-12).all()


# ---------------------------------------------------------------- hand-built one-hot scenarios


def one_hot(i, N):
    return torch.nn.functional.one_hot(torch.tensor([[i]]), N).to(D)  # (1, 1, N)


def test_writing_slot_0_then_1_links_0_to_1():
    N = 4
    L, p = torch.zeros(1, 1, N, N, dtype=D), torch.zeros(1, 1, N, dtype=D)
    for slot in (0, 1):
        w = one_hot(slot, N)
        L, p = A.link(L, w, p), A.precedence(p, w)
    assert L[0, 0, 1, 0].item() == 1.0  # slot 1 was written right after slot 0
    assert L.sum().item() == 1.0
    fwd, bwd = A.directional_weights(L, one_hot(0, N))  # reading slot 0: forward goes to 1
    torch.testing.assert_close(fwd[0, 0], one_hot(1, N)[0])
    fwd, bwd = A.directional_weights(L, one_hot(1, N))  # reading slot 1: backward goes to 0
    torch.testing.assert_close(bwd[0, 0], one_hot(0, N)[0])
    assert torch.diagonal(L, dim1=-2, dim2=-1).abs().sum() == 0


def test_least_used_slot_gets_the_allocation():
    u = torch.tensor([[0.9, 0.2, 1.0, 0.05, 0.6]], dtype=D)
    a = A.allocation(u)
    assert a.argmax().item() == 3
    assert a[0, 3].item() == pytest.approx(0.95, abs=1e-5)
    full = A.allocation(torch.ones(1, 5, dtype=D))
    assert full.sum().item() < 1e-5  # nothing free, nothing allocated
    empty = A.allocation(torch.zeros(1, 5, dtype=D))
    assert empty.max().item() == pytest.approx(1.0, abs=1e-5)


def test_allocations_sum_to_at_most_one():
    u = torch.rand(50, 16, dtype=D) ** 3
    a = A.allocation(u)
    assert (a >= 0).all() and (a.sum(-1) <= 1 + 1e-12).all()
    two = A.write_allocations(u, torch.ones(50, 2, dtype=D))
    assert (two.sum(-1) <= 1 + 1e-12).all()
    # the second head does not take the first head's slot
    assert (two[:, 0].argmax(-1) != two[:, 1].argmax(-1)).all()


def test_freed_slot_is_reallocated():
    u = torch.tensor([[0.99, 0.99, 0.99]], dtype=D)
    wr = one_hot(1, 3)  # read slot 1, then free it
    new_u = A.usage(u, torch.zeros(1, 1, 3, dtype=D), A.retention(torch.ones(1, 1, dtype=D), wr))
    assert new_u[0, 1].item() == 0.0
    assert A.allocation(new_u).argmax().item() == 1


def test_deallocation_erases_freed_content():
    M = torch.ones(1, 3, 2, dtype=D)
    psi = torch.tensor([[1.0, 0.0, 1.0]], dtype=D)
    zero_w = torch.zeros(1, 1, 3, dtype=D)
    e, v = torch.zeros(1, 1, 2, dtype=D), torch.zeros(1, 1, 2, dtype=D)
    torch.testing.assert_close(A.erase_and_write(M, zero_w, e, v), M)  # the paper keeps content
    out = A.erase_and_write(M, zero_w, e, v, psi=psi)
    assert out[0, 1].abs().sum() == 0 and out[0, 0].sum() == 2


# ---------------------------------------------------------------- sparse link


def test_sparse_link_with_k_equal_n_is_exact():
    B, Hw, N, R = 2, 1, 6, 3
    L = torch.zeros(B, Hw, N, N, dtype=D)
    vals, idx = torch.zeros(B, Hw, N, N, dtype=D), torch.zeros(B, Hw, N, N, dtype=D)
    p = torch.zeros(B, Hw, N, dtype=D)
    for _ in range(5):
        w, wr = rand_dist(B, Hw, N, scale=0.9), rand_dist(B, R, N)
        L = A.link(L, w, p)
        vals, idx = sparse_link(vals, idx, w, p)
        p = A.precedence(p, w)
        torch.testing.assert_close(densify(vals, idx), L)
        for got, ref in zip(sparse_directional_weights(vals, idx, wr), A.directional_weights(L, wr), strict=True):
            torch.testing.assert_close(got, ref)


def test_sparse_link_keeps_k_largest_per_row():
    N, K = 10, 2
    vals, idx = torch.zeros(1, 1, N, K, dtype=D), torch.zeros(1, 1, N, K, dtype=D)
    p = torch.zeros(1, 1, N, dtype=D)
    for slot in range(N):  # a one-hot write sequence 0, 1, 2, ...
        w = one_hot(slot, N)
        vals, idx = sparse_link(vals, idx, w, p)
        p = A.precedence(p, w)
    dense = densify(vals, idx)[0, 0]
    for i in range(1, N):
        assert dense[i, i - 1].item() == pytest.approx(1.0)
    assert vals.shape[-1] == K and (dense != 0).sum() == N - 1


# ---------------------------------------------------------------- gradients and safety


def test_addressing_functions_gradcheck():
    B, N, W, R = 2, 5, 3, 2

    def leaf(t):
        return t.detach().requires_grad_()

    M, k, beta, m = (
        leaf(torch.randn(B, N, W, dtype=D)),
        leaf(torch.randn(B, R, W, dtype=D)),
        leaf(1 + torch.rand(B, R, dtype=D)),
        leaf(torch.rand(B, R, W, dtype=D)),
    )
    assert torch.autograd.gradcheck(A.content_weights, (M, k, beta))
    assert torch.autograd.gradcheck(A.content_weights, (M, k, beta, m))
    u = leaf(torch.rand(B, N, dtype=D))
    assert torch.autograd.gradcheck(A.allocation, (u,))
    assert torch.autograd.gradcheck(A.write_allocations, (u, leaf(torch.rand(B, 2, dtype=D))))
    L, w, p = leaf(torch.rand(B, 1, N, N, dtype=D) / N), leaf(rand_dist(B, 1, N)), leaf(rand_dist(B, 1, N))
    assert torch.autograd.gradcheck(A.link, (L, w, p))
    vals, idx = torch.rand(B, 1, N, 3, dtype=D).requires_grad_(), torch.randint(0, N, (B, 1, N, 3)).to(D)
    assert torch.autograd.gradcheck(lambda v, w_, p_: sparse_link(v, idx, w_, p_)[0], (vals, w, p))
    wr = leaf(rand_dist(B, R, N))
    assert torch.autograd.gradcheck(lambda v, w_: sparse_directional_weights(v, idx, w_), (vals, wr))
    assert torch.autograd.gradcheck(A.sharpen, (leaf(rand_dist(B, R, N)), leaf(1 + torch.rand(B, R, dtype=D))))


def test_no_nan_with_zero_memory_zero_keys_saturated_gates():
    B, N, W, R = 2, 6, 4, 3
    M = torch.zeros(B, N, W, requires_grad=True)
    k = torch.zeros(B, R, W, requires_grad=True)
    c = A.content_weights(M, k, torch.full((B, R), 1e4))
    torch.testing.assert_close(c, torch.full_like(c, 1 / N))
    u = torch.ones(B, N)  # every slot fully used
    a = A.allocation(u)
    f = torch.ones(B, R)  # saturated free gates reading one-hot
    wr = torch.nn.functional.one_hot(torch.zeros(B, R, dtype=torch.long), N).float()
    psi = A.retention(f, wr)
    loss = c.sum() + a.sum() + psi.sum() + A.usage(u, wr[:, :1], psi).sum()
    loss.backward()
    for t in (c, a, psi, M.grad, k.grad):
        assert torch.isfinite(t).all()
