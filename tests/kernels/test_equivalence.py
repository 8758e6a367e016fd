"""Every kernel against the readable equations: outputs, final states and gradients, float64 and float32, padded.

Each case builds one model and runs the same batch twice, with ``mnemonet.kernels`` enabled (the kernels
take over where they exist) and disabled (``prepare`` + ``step`` in ``Recurrent``'s loop, the equations of
``models/``). The cases name the kernel they cover.
"""

from __future__ import annotations

import pytest
import torch

import mnemonet
from mnemonet import kernels
from mnemonet.kernels import dnc_access
from mnemonet.models import state as st
from mnemonet.models.dnc import addressing

I = 3
LENGTHS = torch.tensor([7, 4, 1])  # B = 3, T = 7: one full, one half, one single-step sequence

DNC = dict(output_size=2, hidden_size=6, memory_size=4, word_size=3, num_reads=2)
CASES = {
    # kernel covered: torch's fused sequence ops (cells.py ``sequence``)
    "rnn": ("rnn", dict(hidden_size=5)),
    "lstm": ("lstm", dict(hidden_size=5)),
    "gru": ("gru", dict(hidden_size=5)),
    # kernels.bn_lstm (hand-written BPTT) + kernels.onednn, three variants
    "bn_lstm": ("bn_lstm", dict(hidden_size=5, max_length=5)),
    "bn_lstm_input_only": ("bn_lstm", dict(hidden_size=5, max_length=5, variant="input_only")),
    "bn_lstm_summed": ("bn_lstm", dict(hidden_size=5, max_length=5, variant="summed")),
    # kernels.rims_sequence (whole sequence; more cases in test_rims_sequence.py)
    "rims": ("rims", dict(num_modules=4, module_size=3, k=2, dropout=0.0)),
    # no kernel: the same loop both ways (BRIMs uses prepare + step)
    "brims": ("brims", dict(num_modules=3, module_size=3, k=2, dropout=0.0)),
    # kernels.dnc_sequence (whole sequence), kernels.lstm_step + time_shared, kernels.dnc_access (fused step)
    "dnc": ("dnc", DNC),
    "dnc_lstm_step": ("dnc", {**DNC, "key_masking": True}),
    "dnc_gru_fused_access": ("dnc", {**DNC, "controller": "gru"}),
}  # fmt: skip
SEVEN = ["rnn", "lstm", "gru", "bn_lstm", "rims", "brims", "dnc"]


def make(case: str, dtype: torch.dtype) -> torch.nn.Module:
    name, kwargs = CASES[case]
    return mnemonet.build(name, input_size=I, **kwargs).to(dtype)


def run(model, x, lengths, on: bool):
    """Output, final state leaves and parameter gradients, with kernels on or off."""
    with kernels.enabled(on):
        y, state = model(x, lengths=lengths)
        loss = (y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).square().sum()
        loss = loss + sum(leaf.sum() for leaf in st.tree_leaves(state))
        grads = torch.autograd.grad(loss, [x, *model.parameters()], allow_unused=True)
    return y.detach(), [s.detach() for s in st.tree_leaves(state)], grads


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("padded", [False, True])
def test_kernel_equals_readable_path(case, dtype, padded):
    model = make(case, dtype)
    x = torch.randn(3, 7, I, dtype=dtype, requires_grad=True)
    lengths = LENGTHS if padded else None
    on, off = run(model, x, lengths, True), run(model, x, lengths, False)
    tol = {} if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-5)
    torch.testing.assert_close(on[0], off[0], **tol)
    for a, b in zip(on[1], off[1], strict=True):
        torch.testing.assert_close(a, b, **tol)
    for a, b in zip(on[2], off[2], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("case", ["bn_lstm", "bn_lstm_summed"])
def test_bn_lstm_kernel_equals_readable_path_in_evaluation(case):
    model = make(case, torch.float64)
    x = torch.randn(3, 7, I, dtype=torch.float64, requires_grad=True)
    for _ in range(2):  # some running statistics
        model(x, lengths=LENGTHS)
    model.eval()
    on, off = run(model, x, LENGTHS, True), run(model, x, LENGTHS, False)
    torch.testing.assert_close(on[0], off[0])
    for a, b in zip(on[2], off[2], strict=True):
        torch.testing.assert_close(a, b)


def test_bn_lstm_running_statistics_agree():
    a, b = make("bn_lstm", torch.float64), make("bn_lstm", torch.float64)
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, 7, I, dtype=torch.float64)
    run(a, x.requires_grad_(), LENGTHS, True)
    run(b, x, LENGTHS, False)
    for (name, u), (_, v) in zip(a.named_buffers(), b.named_buffers(), strict=True):
        torch.testing.assert_close(u.double(), v.double(), msg=name)


@pytest.mark.parametrize("case", SEVEN)
@pytest.mark.parametrize("on", [True, False])
@pytest.mark.parametrize("junk", [float("nan"), float("inf")])
def test_padding_never_reaches_outputs_or_gradients(case, on, junk):
    """The padding rule: whatever padded steps hold, outputs and gradients equal those with zero padding."""
    model = make(case, torch.float64)
    x = torch.randn(3, 7, I, dtype=torch.float64)
    real = torch.arange(7)[None] < LENGTHS[:, None]  # (B, T)
    dirty = torch.where(real[..., None], x, junk).requires_grad_()
    clean = torch.where(real[..., None], x, 0.0).requires_grad_()
    y_d, s_d, g_d = run(model, dirty, LENGTHS, on)
    y_c, s_c, g_c = run(model, clean, LENGTHS, on)
    torch.testing.assert_close(y_d, y_c, rtol=0, atol=0)
    for a, b in zip([*s_d, *g_d], [*s_c, *g_c], strict=True):
        if a is not None:
            assert torch.isfinite(a).all()
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not g_d[0][~real].any()  # no gradient reaches a padded input


def test_switch_is_global_and_a_context_manager(monkeypatch):
    assert kernels.is_enabled()
    with kernels.enabled(False):
        assert not kernels.is_enabled()
        with kernels.enabled(True):
            assert kernels.is_enabled()
        assert not kernels.is_enabled()
    assert kernels.is_enabled()
    switch = kernels.enabled(False)  # a plain call switches until switched back
    assert not kernels.is_enabled()
    switch.__exit__(None, None, None)
    assert kernels.is_enabled()
    with pytest.raises(ValueError, match="on: expected True or False"):
        kernels.enabled("no")


@pytest.mark.parametrize(("value", "expected"), [("0", False), ("off", False), ("1", True), ("", True)])
def test_environment_variable(monkeypatch, value, expected):
    monkeypatch.setenv("MNEMONET_KERNELS", value)
    assert kernels._from_env() is expected
    monkeypatch.setenv("MNEMONET_KERNELS", "maybe")
    with pytest.raises(ValueError, match="MNEMONET_KERNELS: expected 0 or 1"):
        kernels._from_env()


def test_kernel_constants_match_the_equations():
    assert dnc_access.EPSILON == addressing.EPSILON


def test_trace_runs_the_readable_loop_and_matches_forward():
    model = make("dnc", torch.float64)
    x = torch.randn(3, 7, I, dtype=torch.float64)
    y, _ = model(x, lengths=LENGTHS)  # the whole-sequence kernel
    y_t, _, traces = model.trace(x, lengths=LENGTHS)
    torch.testing.assert_close(y_t, y)
    assert traces["usage"].shape == (3, 7, 4) and not traces["usage"][2, 1:].any()
