"""The reference implementations' choices (``reference="deepmind"`` and each option) against a NumPy DNC step
written with deepmind/dnc's conventions: per-control linear layers, read modes (backward, forward, content),
softplus strengths, ε on the cosine's norm product, no gradient from usage into the previous write weights,
controller and output clipped."""

import numpy as np
import pytest
import torch

from mnemonet import kernels
from mnemonet.models.cells import LSTMState
from mnemonet.models.dnc import DNCCell, DNCState, addressing, from_deepmind_layout
from mnemonet.models.dnc.access import AccessState, LinkState, MemoryAccess
from mnemonet.models.dnc.conventions import DEEPMIND_PARTS, deepmind_mode_order, resolve_reference

EPS = 1e-6
D = torch.float64


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(x))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def deepmind_params(rng, H, R, W, Hw):
    """Random per-control layers in deepmind/dnc's layout: w `[H, out]`, b `[out]`, used as h @ w + b."""
    sizes = (R * W, Hw * W, Hw * W, R, Hw, Hw * W, R, Hw, Hw, R * (1 + 2 * Hw))
    parts = zip(DEEPMIND_PARTS, sizes, strict=True)
    return {name: (rng.normal(0, 0.5, (H, n)), rng.normal(0, 0.5, n)) for name, n in parts}


def deepmind_access_step(h, params, state, R, W, Hw):
    """One memory step as deepmind/dnc's MemoryAccess computes it (NumPy, float64).

    ``state``: dict memory `[B, N, W]`, usage `[B, N]`, link `[B, Hw, N, N]`, precedence `[B, Hw, N]`,
    read_weights `[B, R, N]`, write_weights `[B, Hw, N]`.
    """
    B = h.shape[0]

    def lin(name, *shape):
        w, b = params[name]
        return (h @ w + b).reshape(B, *shape)

    read_keys, write_keys = lin("read_keys", R, W), lin("write_keys", Hw, W)
    write_vectors, erase = lin("write_vectors", Hw, W), _sigmoid(lin("erase_vectors", Hw, W))
    read_strengths, write_strengths = _softplus(lin("read_strengths", R)), _softplus(lin("write_strengths", Hw))
    free, alloc_gate = _sigmoid(lin("free_gate", R)), _sigmoid(lin("allocation_gate", Hw))
    write_gate, modes = _sigmoid(lin("write_gate", Hw)), _softmax(lin("read_mode", R, 1 + 2 * Hw))

    def content(memory, keys, strengths):
        dot = keys @ memory.transpose(0, 2, 1)  # (B, H, N)
        norm = np.sqrt((keys**2).sum(-1, keepdims=True) + EPS) * np.sqrt((memory**2).sum(-1) + EPS)[:, None]
        return _softmax(dot / (norm + EPS) * strengths[..., None])

    # Freeness: usage after the previous write (its gradient stopped in deepmind), then after the reads
    prev_w = 1.0 - np.prod(1.0 - state["write_weights"], axis=1)
    usage = state["usage"] + (1.0 - state["usage"]) * prev_w
    usage = usage * np.prod(1.0 - free[..., None] * state["read_weights"], axis=1)

    def allocation(u):
        u = EPS + (1.0 - EPS) * u
        out = np.zeros_like(u)
        for b in range(B):
            order = np.argsort(u[b], kind="stable")
            before = np.concatenate([[1.0], np.cumprod(u[b, order])[:-1]])
            out[b, order] = (1.0 - u[b, order]) * before
        return out

    allocs, u = [], usage.copy()
    for j in range(Hw):
        a = allocation(u)
        allocs.append(a)
        u = u + (1.0 - u) * (alloc_gate[:, j : j + 1] * write_gate[:, j : j + 1]) * a
    alloc = np.stack(allocs, 1)  # (B, Hw, N)
    write_content = content(state["memory"], write_keys, write_strengths)
    ww = write_gate[..., None] * (alloc_gate[..., None] * alloc + (1.0 - alloc_gate[..., None]) * write_content)

    reset = np.prod(1.0 - ww[..., None] * erase[:, :, None, :], axis=1)  # (B, N, W)
    memory = state["memory"] * reset + ww.transpose(0, 2, 1) @ write_vectors

    wi, wj = ww[..., :, None], ww[..., None, :]
    link = (1.0 - wi - wj) * state["link"] + wi * state["precedence"][..., None, :]
    idx = np.arange(link.shape[-1])
    link[..., idx, idx] = 0.0
    precedence = (1.0 - ww.sum(-1, keepdims=True)) * state["precedence"] + ww

    prev_read = state["read_weights"][:, None]  # (B, 1, R, N)
    forward = prev_read @ link.transpose(0, 1, 3, 2)  # (B, Hw, R, N)
    backward = prev_read @ link
    read_content = content(memory, read_keys, read_strengths)
    bmode, fmode, cmode = modes[..., :Hw], modes[..., Hw : 2 * Hw], modes[..., 2 * Hw]
    read = (
        cmode[..., None] * read_content
        + (fmode.transpose(0, 2, 1)[..., None] * forward).sum(1)
        + (bmode.transpose(0, 2, 1)[..., None] * backward).sum(1)
    )
    new = {
        "memory": memory, "usage": usage, "link": link, "precedence": precedence,
        "read_weights": read, "write_weights": ww,
    }  # fmt: skip
    return read @ memory, new


def random_numpy_state(rng, B, N, W, R, Hw):
    def dist(*shape):
        x = rng.random(shape)
        return 0.9 * x / x.sum(-1, keepdims=True)

    link = dist(B, Hw, N, N)
    link[..., np.arange(N), np.arange(N)] = 0.0
    return {
        "memory": rng.normal(size=(B, N, W)), "usage": rng.random((B, N)), "link": link,
        "precedence": dist(B, Hw, N), "read_weights": dist(B, R, N), "write_weights": dist(B, Hw, N),
    }  # fmt: skip


def to_torch(state):
    t = {k: torch.tensor(v) for k, v in state.items()}
    link = LinkState(t["link"], t["precedence"])
    return AccessState(t["memory"], t["usage"], link, t["read_weights"], t["write_weights"])


@pytest.mark.parametrize("num_writes", [1, 2])
def test_deepmind_memory_step_matches_numpy_through_the_importer(num_writes):
    rng = np.random.default_rng(num_writes)
    B, H, N, W, R, Hw = 3, 7, 6, 4, 2, num_writes
    params = deepmind_params(rng, H, R, W, Hw)
    access = MemoryAccess(H, N, W, R, Hw, **{k: v for k, v in REFERENCE.items() if k != "clip_value"}).double()
    weight, bias = from_deepmind_layout(params, R, W, Hw)
    with torch.no_grad():
        access.interface.weight.copy_(weight)
        access.interface.bias.copy_(bias)
    state = random_numpy_state(rng, B, N, W, R, Hw)
    h = rng.normal(size=(B, H))
    ours_state = to_torch(state)
    for _ in range(3):  # several steps: the states feed back
        r_ref, state = deepmind_access_step(h, params, state, R, W, Hw)
        r, ours_state, _ = access(torch.tensor(h), ours_state)
        np.testing.assert_allclose(r.detach().numpy(), r_ref, rtol=1e-12, atol=1e-12)
        got = {
            "memory": ours_state.memory, "usage": ours_state.usage, "link": ours_state.link.link,
            "precedence": ours_state.link.precedence, "read_weights": ours_state.read_weights,
            "write_weights": ours_state.write_weights,
        }  # fmt: skip
        for name, value in got.items():
            np.testing.assert_allclose(value.detach().numpy(), state[name], rtol=1e-12, atol=1e-12, err_msg=name)
        h = rng.normal(size=(B, H))


REFERENCE = resolve_reference("deepmind")


def test_the_paper_layout_without_the_importer_differs():
    # a mutation check of the test above: loading deepmind's rows without reordering the modes changes reads
    rng = np.random.default_rng(0)
    B, H, N, W, R = 2, 5, 6, 4, 2
    params = deepmind_params(rng, H, R, W, 1)
    access = MemoryAccess(H, N, W, R, **{k: v for k, v in REFERENCE.items() if k != "clip_value"}).double()
    w = torch.cat([torch.tensor(params[name][0]) for name in DEEPMIND_PARTS], 1).T
    b = torch.cat([torch.tensor(params[name][1]) for name in DEEPMIND_PARTS])
    with torch.no_grad():
        access.interface.weight.copy_(w)
        access.interface.bias.copy_(b)
    state = random_numpy_state(rng, B, N, W, R, 1)
    h = rng.normal(size=(B, H))
    r_ref, _ = deepmind_access_step(h, params, state, R, W, 1)
    r, _, _ = access(torch.tensor(h), to_torch(state))
    assert np.abs(r.detach().numpy() - r_ref).max() > 1e-6


def _lstm_step(x, h, c, w_ih, w_hh, b):
    """torch.nn.LSTMCell's equations, gate order i, f, g, o (NumPy)."""
    z = x @ w_ih.T + h @ w_hh.T + b
    i, f, g, o = np.split(z, 4, axis=-1)
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    return _sigmoid(o) * np.tanh(c), c


def test_deepmind_dnc_step_with_clipping_matches_numpy():
    torch.manual_seed(3)
    B, I, O, H, N, W, R, clip = 3, 5, 4, 8, 6, 4, 2, 0.3
    cell = DNCCell(I, O, H, N, W, R, reference="deepmind", clip_value=clip).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0, 1.0)  # large weights, so that clipping is active
    state = cell.initial_state(B)
    state = state._replace(read_vectors=torch.randn(B, R, W, dtype=D))
    x = torch.randn(B, I, dtype=D)
    y, new = cell(x, state)

    ctrl = cell.controller
    params = {}
    weight, bias = cell.access.interface.weight.detach().numpy(), cell.access.interface.bias.detach().numpy()
    # our rows back into deepmind's per-control layers (inverse of the importer)
    sizes = (R * W, W, W, R, 1, W, R, 1, 1, R * 3)
    start = 0
    for name, n in zip(DEEPMIND_PARTS, sizes, strict=True):
        w, b = weight[start : start + n].T, bias[start : start + n]
        if name == "read_mode":
            inverse = np.argsort(deepmind_mode_order(1))
            w = w.reshape(H, R, 3)[:, :, inverse].reshape(H, -1)
            b = b.reshape(R, 3)[:, inverse].reshape(-1)
        params[name] = (w, b)
        start += n
    h0, c0 = state.controller.h.numpy(), state.controller.c.numpy()
    r0 = state.read_vectors.numpy().reshape(B, -1)
    h, c = _lstm_step(
        np.concatenate([x.numpy(), r0], 1), h0, c0, ctrl.weight_ih.detach().numpy(),
        ctrl.weight_hh.detach().numpy(), (ctrl.bias_ih + ctrl.bias_hh).detach().numpy(),
    )  # fmt: skip
    assert np.abs(h).max() <= 1 and np.abs(c).max() > clip  # the state clip is active
    h, c = np.clip(h, -clip, clip), np.clip(c, -clip, clip)
    a = state.access
    np_state = {
        "memory": a.memory.numpy(), "usage": a.usage.numpy(), "link": a.link.link.numpy(),
        "precedence": a.link.precedence.numpy(), "read_weights": a.read_weights.numpy(),
        "write_weights": a.write_weights.numpy(),
    }  # fmt: skip
    r, _ = deepmind_access_step(h, params, np_state, R, W, 1)
    out = np.concatenate([h, r.reshape(B, -1)], 1) @ cell.output.weight.detach().numpy().T
    out = out + cell.output.bias.detach().numpy()
    assert np.abs(out).max() > clip  # the output clip is active
    np.testing.assert_allclose(y.detach().numpy(), np.clip(out, -clip, clip), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(new.controller.c.detach().numpy(), c, rtol=1e-12, atol=1e-12)


def test_usage_stop_gradient_blocks_only_the_write_weights():
    torch.manual_seed(0)
    u0 = torch.rand(2, 5, dtype=D, requires_grad=True)
    ww0 = torch.rand(2, 1, 5, dtype=D, requires_grad=True)
    psi = torch.rand(2, 5, dtype=D)
    for flows in (True, False):
        u1 = addressing.usage(u0, ww0, psi, write_gradient=flows)
        g_ww, g_u = torch.autograd.grad(u1.sum(), (ww0, u0), allow_unused=True)
        # ∂u_1/∂w^w_0 = (1 − u_0) ψ when it flows; ∂u_1/∂u_0 = (1 − w^w_0) ψ either way
        if flows:
            torch.testing.assert_close(g_ww[:, 0], (1 - u0.detach()) * psi)
        else:
            assert g_ww is None
        torch.testing.assert_close(g_u, (1 - ww0.detach()[:, 0]) * psi)


def test_usage_stop_gradient_in_a_two_step_dnc():
    # the loss reaches the first step's write weights only through the second step's usage
    torch.manual_seed(1)
    grads = {}
    for flows in (True, False):
        torch.manual_seed(1)
        access = MemoryAccess(6, 5, 3, 1, usage_write_gradient=flows).double()
        s0 = access.initial_state(2)
        h = torch.randn(2, 2, 6, dtype=D)
        _, s1, _ = access(h[:, 0], s0)
        ww0 = s1.write_weights
        ww0.retain_grad()
        # cut every other path from w^w_0 (memory -> reads -> ψ, link): only u_1's use of w^w_0 is left
        cut = s1._replace(
            memory=s1.memory.detach(),
            link=LinkState(*(t.detach() for t in s1.link)),
            read_weights=s1.read_weights.detach(),
        )
        _, s2, _ = access(h[:, 1], cut)
        s2.usage.sum().backward()
        grads[flows] = ww0.grad
    assert grads[True].abs().max() > 1e-3
    assert grads[False] is None or grads[False].abs().max() == 0


def test_outer_eps_is_deepminds_cosine():
    torch.manual_seed(2)
    M = torch.randn(2, 5, 3, dtype=D) * 1e-3  # small norms, where the outer ε matters
    k = torch.randn(2, 2, 3, dtype=D) * 1e-3
    dot = k @ M.transpose(1, 2)
    kn = torch.sqrt((k**2).sum(-1, keepdim=True) + EPS)
    mn = torch.sqrt((M**2).sum(-1) + EPS)[:, None]
    torch.testing.assert_close(addressing.cosine_similarity(M, k, outer_eps=True), dot / (kn * mn + EPS))
    torch.testing.assert_close(addressing.cosine_similarity(M, k), dot / (kn * mn))
    assert (addressing.cosine_similarity(M, k, outer_eps=True) - addressing.cosine_similarity(M, k)).abs().max() > 1e-3


def test_reference_choices_and_their_errors():
    assert resolve_reference("paper") == {
        "usage_write_gradient": True, "outer_eps": False, "strength": "oneplus", "clip_value": None,
    }  # fmt: skip
    assert resolve_reference("deepmind", clip_value=5.0)["clip_value"] == 5.0
    with pytest.raises(ValueError, match="reference: expected one of"):
        resolve_reference("tensorflow")
    with pytest.raises(ValueError, match="strength"):
        DNCCell(3, 2, 4, 5, 3, 1, strength="exp")
    with pytest.raises(ValueError, match="clip_value"):
        DNCCell(3, 2, 4, 5, 3, 1, clip_value=-1.0)
    params = deepmind_params(np.random.default_rng(0), 4, 2, 3, 1)
    del params["read_mode"]
    with pytest.raises(ValueError, match="read_mode"):
        from_deepmind_layout(params, 2, 3)
    params = deepmind_params(np.random.default_rng(0), 4, 2, 3, 1)
    with pytest.raises(ValueError, match=r"params\['read_keys'\]: expected w \(H, 8\)"):
        from_deepmind_layout(params, 4, 2)


def test_deepmind_choices_run_the_readable_equations_and_the_paper_keeps_its_kernel():
    paper = DNCCell(3, 2, 8, 5, 3, 2)
    deepmind = DNCCell(3, 2, 8, 5, 3, 2, reference="deepmind")
    if kernels.is_enabled():
        assert paper.kernel() == "sequence"
    assert deepmind.kernel() is None and not deepmind.access.uses_fused_step
    assert DNCCell(3, 2, 8, 5, 3, 2, outer_eps=True).kernel() != "sequence"


def test_deepmind_dnc_gradcheck():
    torch.manual_seed(4)
    cell = DNCCell(3, 2, 4, 4, 3, 2, reference="deepmind", clip_value=0.5).double()
    x = torch.randn(2, 3, 3, dtype=D, requires_grad=True)

    def run(x):
        state = cell.initial_state(2)
        ys = []
        for t in range(x.shape[1]):
            y, state = cell(x[:, t], state)
            ys.append(y)
        return torch.stack(ys, 1)

    assert torch.autograd.gradcheck(run, (x,))


def test_deepmind_state_is_a_dnc_state():
    cell = DNCCell(3, 2, 4, 4, 3, 2, reference="deepmind")
    _, state = cell(torch.randn(2, 3), cell.initial_state(2))
    assert isinstance(state, DNCState) and isinstance(state.controller, LSTMState)
