"""The whole-sequence RIMs kernel (kernels/rims_sequence.py) against the readable step loop (models/rims.py)."""

from __future__ import annotations

import pytest
import torch

import mnemonet
from mnemonet import kernels
from mnemonet.kernels import native, rims_sequence
from mnemonet.kernels.rims_sequence import RIMsOptions, RIMsSequence, dropout_noise, release_workspaces

LENGTHS = torch.tensor([6, 3, 1])  # B = 3, T = 6


def build(**kwargs) -> torch.nn.Module:
    args = dict(input_size=3, num_modules=4, module_size=3, k=2, comm_heads=2, comm_key_size=5, input_key_size=4)
    return mnemonet.build("rims", **{**args, **kwargs})


def run(model, x, lengths, on: bool, seed: int = 7):
    """Output, final state and gradients of x and every parameter; the same seed both ways (dropout)."""
    torch.manual_seed(seed)
    with kernels.enabled(on):
        y, state = model(x, lengths=lengths)
        loss = (y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).square().sum() + state.h.sum() - state.c.sum()
        grads = torch.autograd.grad(loss, [x, *model.parameters()])
    return [y.detach(), state.h.detach(), state.c.detach(), *grads]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    "options",
    [{}, {"k": 4}, {"inactive_comm": "kept"}, {"selection": "score"}, {"input_bias": True, "dropout": 0.3}],
    ids=["official", "all_active", "kept", "score", "bias_dropout"],
)
def test_kernel_equals_step_loop(options, training, padded, dtype):
    model = build(**options).to(dtype).train(training)
    assert model.cell.uses_sequence_kernel()
    x = torch.randn(3, 6, 3, dtype=dtype, requires_grad=True)
    lengths = LENGTHS if padded else None
    on, off = run(model, x, lengths, True), run(model, x, lengths, False)
    tol = {} if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-5)
    for a, b in zip(on, off, strict=True):
        torch.testing.assert_close(a, b, **tol)


def test_dropout_is_drawn_like_the_step_loop():
    """With dropout on, the kernel's output differs from evaluation's and equals the step loop's (same seed)."""
    model = build(dropout=0.5).to(torch.float64)
    x = torch.randn(3, 6, 3, dtype=torch.float64, requires_grad=True)
    on, off = run(model, x, None, True), run(model, x, None, False)
    torch.testing.assert_close(on[0], off[0])
    assert not torch.allclose(on[0], run(model.eval(), x, None, True)[0])


def test_initial_state_gradient():
    model = build().to(torch.float64)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    grads = []
    for on in (True, False):
        h0 = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
        c0 = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
        with torch.no_grad():
            h0.copy_(torch.linspace(-1, 1, 24, dtype=torch.float64).view(2, 4, 3))
            c0.copy_(torch.linspace(1, -1, 24, dtype=torch.float64).view(2, 4, 3))
        torch.manual_seed(0)
        with kernels.enabled(on):
            y, state = model(x, model.cell.initial_state(2)._replace(h=h0, c=c0))
            grads.append(torch.autograd.grad(y.square().sum() + state.c.sum(), [h0, c0]))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def _inputs(T=3, B=2, n=3, hs=2, dk=4, dv=5, Hc=2, dc=3):
    torch.manual_seed(3)
    d = dict(dtype=torch.float64)
    F = Hc * (2 * dc + dc)
    tensors = [
        torch.randn(T, B, dk, **d),  # keys
        torch.randn(T, B, dv, **d),  # values
        torch.randn(B, n, hs, **d),  # h0
        torch.randn(B, n, hs, **d),  # c0
        None,  # real
        None,  # read noise
        None,  # value noise
        torch.randn(n, dv, 4 * hs, **d),  # w_ih
        torch.randn(n, hs, 4 * hs + dk, **d),  # [w_hh | w_query]
        torch.randn(n, 4 * hs, **d),  # bias
        torch.randn(n, hs, F, **d),  # w_qkv
        torch.randn(2 * hs, Hc * dc, **d),  # w_out
        torch.randn(2 * hs, **d),  # b_out
    ]
    return [t if t is None else t.requires_grad_() for t in tensors]


@pytest.mark.parametrize(("k", "proposed"), [(2, False), (3, True), (3, False)])
def test_gradcheck(k, proposed):
    """The hand-written backward is the derivative of the forward (k < n with "proposed" is not: the official
    code blocks the gradient of what inactive modules offer, so there only the step-loop comparison applies)."""
    inputs = _inputs()
    options = RIMsOptions(k, comm_heads=2, comm_key_size=3, comm_value_size=3, by_score=False, proposed=proposed)

    def f(*args):
        y, h, c, _ = RIMsSequence.apply(*args, options)
        return y, h, c

    assert torch.autograd.gradcheck(f, tuple(inputs), eps=1e-6, atol=1e-6)


def test_no_caller_tensor_is_modified():
    inputs = _inputs()
    T, B, n, dv, hs = 3, 2, 3, 5, 2
    inputs[5:7] = dropout_noise([(T, B, n, dv), (T, B, n, hs)], 0.2, inputs[0].detach())
    before = [None if t is None else t.detach().clone() for t in inputs]
    options = RIMsOptions(2, 2, 3, 3, by_score=False, proposed=True)
    for _ in range(2):  # the second call reuses the pooled workspaces
        y, h, c, _ = RIMsSequence.apply(*inputs, options)
        (y.sum() + h.sum() + c.sum()).backward()
    for a, b in zip(inputs, before, strict=True):
        if a is not None:
            assert torch.equal(a.detach(), b)
    release_workspaces()


def test_outputs_do_not_share_pooled_memory():
    """Outputs of one call survive the next call (which reuses the first call's freed workspace)."""
    model = build().eval()
    x1, x2 = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    y1, s1 = model(x1)
    kept = y1.clone(), s1.h.clone()
    model(x2)
    assert torch.equal(y1, kept[0]) and torch.equal(s1.h, kept[1])


@pytest.mark.parametrize(
    "options", [{"dynamics": "gru"}, {"comm_output": "linear"}, {"input_heads": 2}, {"comm_dropout": 0.1}]
)
def test_other_configurations_take_the_step_loop(options):
    model = build(**options)
    assert not model.cell.uses_sequence_kernel()
    assert model.cell.sequence(torch.zeros(1, 2, 3), model.initial_state(1), None) is None
    with kernels.enabled(False):
        model_on = build()
        assert not model_on.cell.uses_sequence_kernel()


needs_native = pytest.mark.skipif(native.library() is None, reason="no C compiler: the C step does not run")


@needs_native
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "options",
    [{}, {"inactive_comm": "kept", "dropout": 0.3}, {"selection": "score"}, {"k": 4}],
    ids=["official_dropout", "kept_dropout", "score", "all_active"],
)
def test_c_step_equals_torch_step(options, dtype, monkeypatch):
    """The kernel's C step (rims_native_body.h) against its torch ops, padded rows included, dropout on."""
    model = build(**options).to(dtype).train()
    x = torch.randn(3, 6, 3, dtype=dtype, requires_grad=True)
    on = run(model, x, LENGTHS, True)
    monkeypatch.setattr(rims_sequence, "NATIVE", False)
    off = run(model, x, LENGTHS, True)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    for a, b in zip(on, off, strict=True):
        torch.testing.assert_close(a, b, **tol)


@needs_native
def test_c_step_at_preset_sizes_float32(monkeypatch):
    """float32 at the -small preset's sizes (6 modules of 16 units, 4 heads, B = 16): the C step's vectorised exp
    keeps outputs and gradients within float32 rounding of torch's."""
    model = mnemonet.build("rims", input_size=5, num_modules=6, module_size=16, k=4).train()
    x = torch.randn(16, 12, 5, requires_grad=True)
    on = run(model, x, None, True)
    monkeypatch.setattr(rims_sequence, "NATIVE", False)
    off = run(model, x, None, True)
    for a, b in zip(on, off, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _lowbias32(x: int) -> int:
    """The hash of dropout_noise in plain Python integers (an independent reference)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


@pytest.mark.parametrize("use_c", [False, True])
def test_dropout_noise_matches_a_python_reference(use_c, monkeypatch):
    if use_c and native.library() is None:
        pytest.skip("no C compiler")
    monkeypatch.setattr(rims_sequence, "NATIVE", use_c)
    p = 0.3
    torch.manual_seed(11)
    a, b = dropout_noise([(4, 5), (3, 7)], p, torch.empty((), dtype=torch.float64))
    torch.manual_seed(11)
    key0, key1 = torch.randint(0, 2**32, (2,)).tolist()
    threshold = round(p * 2**24)
    expected = [
        1 / (1 - p) if (_lowbias32((_lowbias32(i ^ key0) + key1) & 0xFFFFFFFF) >> 8) >= threshold else 0.0
        for i in range(20 + 21)
    ]
    assert torch.cat([a.flatten(), b.flatten()]).tolist() == expected


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dropout_noise_is_the_same_with_and_without_c(dtype, monkeypatch):
    shapes = [(64, 6, 100), (64, 6, 16)]
    torch.manual_seed(5)
    with_c = dropout_noise(shapes, 0.1, torch.empty((), dtype=dtype))
    monkeypatch.setattr(rims_sequence, "NATIVE", False)
    torch.manual_seed(5)
    without = dropout_noise(shapes, 0.1, torch.empty((), dtype=dtype))
    for a, b in zip(with_c, without, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5])
def test_dropout_noise_statistics(p):
    like = torch.empty(())
    torch.manual_seed(0)
    (noise,) = dropout_noise([(1000, 1000)], p, like)
    kept = noise != 0
    assert torch.all(noise[kept] == torch.tensor(1 / (1 - p)))
    sd = (p * (1 - p) / noise.numel()) ** 0.5
    assert abs((~kept).float().mean().item() - p) <= 5 * sd + 1e-9
    torch.manual_seed(0)
    assert torch.equal(noise, dropout_noise([(1000, 1000)], p, like)[0])  # the seed reproduces it
    if p > 0:
        assert not torch.equal(noise, dropout_noise([(1000, 1000)], p, like)[0])  # the next draw differs
        # neighbouring rows are not copies of each other (the counter runs on)
        assert not torch.equal(kept[0], kept[1])


def test_dropout_noise_rejects_a_bad_probability():
    with pytest.raises(ValueError, match="p: a dropout probability in"):
        dropout_noise([(2, 3)], 1.0, torch.empty(()))


def test_small_loops_run_on_one_thread_and_restore_the_count(monkeypatch):
    """The -small sizes' time loops run on one intra-op thread; the caller's thread count comes back after forward,
    after backward, and after an error inside the loop."""
    seen = []
    real_set = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda k: (seen.append(k), real_set(k)))
    before = torch.get_num_threads()
    real_set(2)
    try:
        model = build().train()
        y, _ = model(torch.randn(2, 5, 3))
        assert seen == [1, 2] and torch.get_num_threads() == 2
        y.sum().backward()
        assert seen == [1, 2, 1, 2] and torch.get_num_threads() == 2
        monkeypatch.setattr(rims_sequence, "_forward_native", lambda *a: 1 / 0)
        monkeypatch.setattr(rims_sequence, "_forward_torch", lambda *a: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            model(torch.randn(2, 5, 3))
        assert torch.get_num_threads() == 2
    finally:
        real_set(before)
