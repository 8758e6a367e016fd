"""SAM and the SDNC (Rae et al. 2016) as the DNC's ``memory="sam"`` / ``"sdnc"``: NumPy steps from the paper's
equations, the in-place sequence path against the out-of-place step, gradcheck, a hand-built LRU scenario, shapes
and bad arguments."""

import numpy as np
import pytest
import torch

import mnemonet
from mnemonet import kernels
from mnemonet.kernels.sparse_memory import SparseMemoryTape
from mnemonet.models.dnc import build_dnc
from mnemonet.models.dnc.sparse import (
    FunctionalMemory,
    SparseMemoryAccess,
    sam_step,
    sparse_interface_size,
    split_sparse_interface,
)

D = torch.float64
B, N, W, R, K, H = 3, 12, 5, 2, 3, 7
SIZES = dict(input_size=4, output_size=3, hidden_size=H, memory_size=N, word_size=W, num_reads=R)


def numpy_sam_step(M, U, wr_prev, ir_prev, keys, beta, add, alpha, gamma, k, delta):
    """One SAM step per the paper, on dense NumPy arrays, one batch element at a time.

    Eq. 5 w^W = α(γ mean_heads w^R_{t−1} + (1 − γ) I^U); eq. 4 M = (1 − I^U 1^T) ⊙ M + w^W a^T; the K nearest
    slots by cosine, softmax(β cos) over them (eq. 3); r = Σ w^R M; U(i) = 0 if w^W(i) + Σ w^R(i) > δ else U + 1.
    """
    M, U = M.copy(), U.copy()
    Bn, Nn, _ = M.shape
    Rn = keys.shape[1]
    reads, w_read, i_read, w_write = np.zeros((Bn, Rn, M.shape[2])), np.zeros((Bn, Rn, k)), [], np.zeros((Bn, Nn))
    for b in range(Bn):
        lru = int(np.argmax(U[b]))
        w = np.zeros(Nn)
        for r in range(Rn):
            for j in range(ir_prev.shape[2]):
                w[int(ir_prev[b, r, j])] += alpha[b] * gamma[b] * wr_prev[b, r, j] / Rn
        w[lru] += alpha[b] * (1 - gamma[b])
        M[b, lru] = 0.0
        M[b] += np.outer(w, add[b])
        access = w.copy()
        idx_b = []
        for r in range(Rn):
            key = keys[b, r]
            cos = M[b] @ key / (np.sqrt(key @ key + 1e-6) * np.sqrt((M[b] ** 2).sum(1) + 1e-6))
            top = np.argsort(-cos, kind="stable")[:k]
            e = np.exp(beta[b, r] * cos[top] - (beta[b, r] * cos[top]).max())
            w_read[b, r] = e / e.sum()
            reads[b, r] = w_read[b, r] @ M[b, top]
            access[top] += w_read[b, r]
            idx_b.append(top)
        i_read.append(idx_b)
        U[b] = np.where(access > delta, 0.0, U[b] + 1.0)
        w_write[b] = w
    return reads, M, U, w_read, np.array(i_read), w_write


def random_state(access, generator=None):
    """A SAM state with random memory, usage and previous read weightings (distributions over K slots)."""
    s = access.initial_state(B, dtype=D)
    g = generator or torch.Generator().manual_seed(0)
    wr = torch.rand(B, R, K, generator=g, dtype=D)
    idx = torch.stack([torch.randperm(N, generator=g)[: R * K].reshape(R, K) for _ in range(B)]).to(D)
    return s._replace(
        memory=torch.randn(B, N, W, generator=g, dtype=D),
        usage=torch.randint(0, 5, (B, N), generator=g).to(D),
        read_weights=wr / wr.sum(-1, keepdim=True),
        read_indices=idx,
    )


def dense_write(state):
    out = torch.zeros(B, N, dtype=D)
    return out.scatter_add(-1, state.write_indices.long(), state.write_weights)


@pytest.mark.parametrize("in_place", [False, True])
def test_sam_steps_match_numpy(in_place):
    access = SparseMemoryAccess(H, N, W, R, k=K, delta=0.01).double()
    state = random_state(access)
    g = torch.Generator().manual_seed(1)
    tape, token = SparseMemoryTape.open(state.memory) if in_place else (None, None)
    M, U = state.memory.numpy(), state.usage.numpy()
    wr, ir = state.read_weights.numpy(), state.read_indices.numpy()
    for _ in range(4):
        iface = split_sparse_interface(torch.randn(B, sparse_interface_size(W, R), generator=g, dtype=D) * 2, W, R)
        memory = tape if in_place else FunctionalMemory(state.memory)
        r, state, _info, token = sam_step(iface, state._replace(memory=token), K, memory, token, delta=0.01)
        n = [t.numpy() for t in (iface.read_keys, iface.read_strengths, iface.write_vector)]
        ref = numpy_sam_step(M, U, wr, ir, *n, iface.write_gate.numpy(), iface.interpolation_gate.numpy(), K, 0.01)
        r_ref, M, U, wr, ir, ww = ref
        current = tape.current() if in_place else state.memory
        np.testing.assert_allclose(r.numpy(), r_ref, atol=1e-12)
        np.testing.assert_allclose(current.numpy(), M, atol=1e-12)
        np.testing.assert_allclose(state.usage.numpy(), U)
        np.testing.assert_allclose(state.read_weights.numpy(), wr, atol=1e-12)
        np.testing.assert_array_equal(state.read_indices.numpy(), ir)
        np.testing.assert_allclose(dense_write(state).numpy(), ww, atol=1e-12)


def topk_renormalised(v, k):
    """Keep the K largest entries of a dense weighting, rescaled to its total (the SDNC's sparsification)."""
    top = np.argsort(-v, kind="stable")[:k]
    out = np.zeros_like(v)
    out[top] = v[top] * (v.sum() / v[top].sum() if v[top].sum() > 0 else 0.0)
    return out


def numpy_sdnc_step(M, U, wr_prev, p_prev, L, keys, beta, add, alpha, gamma, modes, k, delta):
    """One SDNC step on dense arrays: SAM's write (eq. 4, 5), then the DNC's link and precedence from the
    K-sparse ŵ = topK(w^W) and p̂ (L[i, j] = (1 − ŵ[i] − ŵ[j]) L[i, j] + ŵ[i] p̂_{t−1}[j], zero diagonal;
    p̂_t = topK((1 − Σŵ) p̂_{t−1} + ŵ)), f = L w^R_{t−1}, b = L^T w^R_{t−1}, c = softmax over the K nearest,
    w^R = topK(π_b b + π_c c + π_f f); r = w^R M; the usage rule. Dense weightings throughout: wr_prev `[B, R, N]`."""
    M, U, L = M.copy(), U.copy(), L.copy()
    Bn, Nn, _ = M.shape
    Rn = keys.shape[1]
    reads, w_read, p_new = np.zeros((Bn, Rn, M.shape[2])), np.zeros((Bn, Rn, Nn)), np.zeros((Bn, Nn))
    for b in range(Bn):
        lru = int(np.argmax(U[b]))
        w = alpha[b] * gamma[b] * wr_prev[b].sum(0) / Rn
        w[lru] += alpha[b] * (1 - gamma[b])
        M[b, lru] = 0.0
        M[b] += np.outer(w, add[b])
        w_hat = topk_renormalised(w, k)
        L[b] = (1 - w_hat[:, None] - w_hat[None, :]) * L[b] + np.outer(w_hat, p_prev[b])
        np.fill_diagonal(L[b], 0.0)
        p_new[b] = topk_renormalised((1 - w_hat.sum()) * p_prev[b] + w_hat, k)
        access = w.copy()
        for r in range(Rn):
            key = keys[b, r]
            cos = M[b] @ key / (np.sqrt(key @ key + 1e-6) * np.sqrt((M[b] ** 2).sum(1) + 1e-6))
            top = np.argsort(-cos, kind="stable")[:k]
            c = np.zeros(Nn)
            e = np.exp(beta[b, r] * cos[top] - (beta[b, r] * cos[top]).max())
            c[top] = e / e.sum()
            f, bk = L[b] @ wr_prev[b, r], L[b].T @ wr_prev[b, r]
            w_read[b, r] = topk_renormalised(modes[b, r, 0] * bk + modes[b, r, 1] * c + modes[b, r, 2] * f, k)
            reads[b, r] = w_read[b, r] @ M[b]
            access += w_read[b, r]
        U[b] = np.where(access > delta, 0.0, U[b] + 1.0)
    return reads, M, U, w_read, p_new, L


def densify(values, indices, n=N):
    return torch.zeros(*values.shape[:-1], n, dtype=D).scatter_add(-1, indices.long(), values).numpy()


@pytest.mark.parametrize("in_place", [False, True])
def test_sdnc_steps_match_numpy(in_place):
    access = SparseMemoryAccess(H, N, W, R, k=K, delta=0.01, link=True).double()
    state = random_state(access)
    g = torch.Generator().manual_seed(2)
    tape, token = SparseMemoryTape.open(state.memory) if in_place else (None, None)
    M, U = state.memory.numpy(), state.usage.numpy()
    wr, p, L = densify(state.read_weights, state.read_indices), np.zeros((B, N)), np.zeros((B, N, N))
    for _ in range(4):
        xi = torch.randn(B, sparse_interface_size(W, R, link=True), generator=g, dtype=D) * 2
        iface = split_sparse_interface(xi, W, R, link=True)
        memory = tape if in_place else FunctionalMemory(state.memory)
        r, state, _info, token = sam_step(iface, state._replace(memory=token), K, memory, token, delta=0.01)
        n = [t.numpy() for t in (iface.read_keys, iface.read_strengths, iface.write_vector)]
        gates = (iface.write_gate.numpy(), iface.interpolation_gate.numpy(), iface.read_modes.numpy())
        r_ref, M, U, wr, p, L = numpy_sdnc_step(M, U, wr, p, L, *n, *gates, K, 0.01)
        current = tape.current() if in_place else state.memory
        np.testing.assert_allclose(r.numpy(), r_ref, atol=1e-12)
        np.testing.assert_allclose(current.numpy(), M, atol=1e-12)
        np.testing.assert_allclose(state.usage.numpy(), U)
        np.testing.assert_allclose(densify(state.read_weights, state.read_indices), wr, atol=1e-12)
        np.testing.assert_allclose(densify(state.precedence_weights, state.precedence_indices), p, atol=1e-12)
        rows_cols = state.link_rows.long() * N + state.link_cols.long()
        np.testing.assert_allclose(densify(state.link_values, rows_cols, N * N).reshape(B, N, N), L, atol=1e-12)
    assert (L != 0).sum() > B * K  # the link has been used


def test_sdnc_link_keeps_only_its_capacity():
    """A capacity below the link's non-zeros drops the smallest entries: still a valid (non-negative) link."""
    access = SparseMemoryAccess(H, N, W, R, k=K, link=True, link_capacity=5).double()
    state = random_state(access)
    g = torch.Generator().manual_seed(3)
    for _ in range(4):
        iface = split_sparse_interface(torch.randn(B, access.interface.out_features, generator=g, dtype=D), W, R,
                                       link=True)  # fmt: skip
        _r, state, _i, _t = sam_step(iface, state, K, FunctionalMemory(state.memory))
    assert state.link_values.shape == (B, 5) and (state.link_values >= 0).all()
    assert (state.link_values > 0).sum() == B * 5


def _run(model, x, M0, kernels_on):
    with kernels.enabled(kernels_on):
        s = model.initial_state(x.shape[0], dtype=D)
        s = s._replace(access=s.access._replace(memory=M0))
        y, final = model(x, s)
    return y, final


@pytest.mark.parametrize("memory", ["sam", "sdnc"])
def test_in_place_sequence_equals_out_of_place_steps_values_and_gradients(memory):
    torch.manual_seed(0)
    model = build_dnc(**SIZES, memory=memory, sparse_k=K).double()
    x = torch.randn(B, 6, 4, dtype=D)
    M_init = torch.randn(B, N, W, dtype=D)
    results = []
    for on in (True, False):
        model.zero_grad()
        M0 = M_init.clone().requires_grad_()
        y, final = _run(model, x, M0, on)
        (y.square().sum() + final.access.memory.sin().sum() + final.read_vectors.sum()).backward()
        results.append([y, final.access.memory, final.access.usage, M0.grad] + [p.grad for p in model.parameters()])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("memory", "in_place"), [("sam", True), ("sam", False), ("sdnc", True)])
def test_gradcheck_through_a_sequence(memory, in_place):
    torch.manual_seed(0)
    model = build_dnc(**{**SIZES, "memory_size": 6, "hidden_size": 5}, memory=memory, sparse_k=2).double()
    x = torch.randn(2, 3, 4, dtype=D, requires_grad=True)
    M0 = torch.randn(2, 6, W, dtype=D, requires_grad=True)

    def f(x, M0):
        y, final = _run(model, x, M0, in_place)
        return y, final.access.memory

    assert torch.autograd.gradcheck(f, (x, M0), eps=1e-6, atol=1e-7)


def test_repeated_backward_gives_the_same_gradient():
    torch.manual_seed(0)
    model = build_dnc(**SIZES, memory="sam", sparse_k=K).double()
    x = torch.randn(B, 5, 4, dtype=D)
    M0 = torch.randn(B, N, W, dtype=D, requires_grad=True)
    y, _ = _run(model, x, M0, True)
    first = torch.autograd.grad(y.sum(), (M0, *model.parameters()), retain_graph=True)
    only_params = torch.autograd.grad(y.sum(), tuple(model.parameters()), retain_graph=True)  # M0's node not run
    again = torch.autograd.grad(y.sum(), (M0, *model.parameters()))
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(first[1:], only_params, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_writes_go_to_the_least_recently_used_slot_and_erase_it():
    """γ ≈ 0, α ≈ 1: each step erases the least recently used slot and writes a_t there (0, 1, 2 in turn); the
    read key is a_t, so the read finds the slot just written and the untouched slot keeps its content."""
    access = SparseMemoryAccess(H, 4, 3, 1, k=1).double()
    state = access.initial_state(1, dtype=D)
    state = state._replace(memory=torch.tensor([0.0, 0.0, 9.0], dtype=D).expand(1, 4, 3))
    for t, angle in enumerate([0.0, 1.0, 2.0]):
        a = [np.cos(angle), np.sin(angle), 0.0]
        xi = torch.tensor([a + a + [5.0, 30.0, -30.0]], dtype=D)  # key, a_t, β, α ≈ 1, γ ≈ 0
        r, state, info, _ = sam_step(split_sparse_interface(xi, 3, 1), state, 1, FunctionalMemory(state.memory))
        assert int(info.least_used) == t and int(state.read_indices[0, 0, 0]) == t
        torch.testing.assert_close(state.memory[0, t], torch.tensor(a, dtype=D))  # erased, then a_t written
        torch.testing.assert_close(r[0, 0], torch.tensor(a, dtype=D))
    torch.testing.assert_close(state.memory[0, 3], torch.tensor([0.0, 0.0, 9.0], dtype=D))
    torch.testing.assert_close(state.usage[0], torch.tensor([2.0, 1.0, 0.0, 3.0], dtype=D))


def test_shapes_state_round_trip_trace_and_repr():
    model = mnemonet.build("dnc", **SIZES, memory="sam", sparse_k=K)
    x = torch.randn(B, 5, 4)
    y, s = model(x)
    assert y.shape == (B, 5, 3) and s.access.memory.shape == (B, N, W) and s.access.usage.shape == (B, N)
    assert s.access.read_weights.shape == (B, R, K) and s.access.write_weights.shape == (B, R * K + 1)
    torch.testing.assert_close(model.unflatten_state(model.flatten_state(s)), s)
    y2, _s2, traces = model.trace(x)
    torch.testing.assert_close(y2, y)
    assert traces["read_weights"].shape == (B, 5, R, K) and traces["least_used"].shape == (B, 5)
    assert "memory='sam'" in repr(model) and f"sparse_k={K}" in repr(model)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"memory": "sparse"}, "memory"),
        ({"memory": "sam", "sparse_k": 0}, "sparse_k"),
        ({"memory": "sam", "sparse_k": N + 1}, "sparse_k"),
        ({"memory": "sam", "sparse_delta": 1.5}, "sparse_delta"),
        ({"memory": "sam", "link_top_k": 4}, "link_top_k"),
        ({"memory": "sam", "num_writes": 2}, "num_writes"),
        ({"memory": "sam", "key_masking": True}, "key_masking"),
        ({"memory": "sdnc", "link_sharpness": True}, "link_sharpness"),
        ({"memory": "sdnc", "sparse_link_capacity": 0}, "sparse_link_capacity"),
    ],
)
def test_bad_arguments_name_the_argument(kw, name):
    with pytest.raises(ValueError, match=f"^{name}: "):
        build_dnc(**SIZES, **kw)


def test_bad_interface_names_xi():
    with pytest.raises(ValueError, match=r"^xi: expected shape"):
        split_sparse_interface(torch.zeros(2, 5), W, R)
