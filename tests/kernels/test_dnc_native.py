"""The C memory step (``kernels.native``, ``dnc_native.c``) against the torch kernel and torch's sort; its fallback."""

import re
from pathlib import Path

import pytest
import torch

from mnemonet.kernels import dnc_sequence, native
from mnemonet.models.dnc import addressing, build_dnc

needs_native = pytest.mark.skipif(native.library() is None, reason=f"no C kernels: {native.unavailable_reason()}")


def random_state(model, batch_size, dtype, seed=0):
    """A valid DNC state far from ties: random memory, usage in (0.1, 0.9), weightings that sum to at most 1.

    From the empty memory, slots that were never allocated sort at near-ties of their usage, where the allocation
    weighting jumps: a change in the last bits of the controller's output (two implementations of σ) moves whole
    writes. A random start has no such ties, so the C and torch steps must agree to rounding.
    """
    g = torch.Generator().manual_seed(seed)
    state = model.cell.initial_state(batch_size, dtype=dtype)
    a = state.access
    N = a.memory.shape[1]

    def soft(*shape, scale=1.0):
        return torch.softmax(torch.randn(*shape, generator=g, dtype=dtype), -1) * scale

    link = torch.rand(a.link.link.shape, generator=g, dtype=dtype) / N
    link.diagonal(dim1=-2, dim2=-1).zero_()
    access = a._replace(
        memory=torch.randn(a.memory.shape, generator=g, dtype=dtype),
        usage=torch.rand(a.usage.shape, generator=g, dtype=dtype) * 0.8 + 0.1,
        link=a.link._replace(link=link, precedence=soft(*a.link.precedence.shape, scale=0.5)),
        read_weights=soft(*a.read_weights.shape),
        write_weights=soft(*a.write_weights.shape, scale=0.5),
    )
    controller = type(state.controller)(*(torch.randn(x.shape, generator=g, dtype=dtype) for x in state.controller))
    read = torch.randn(state.read_vectors.shape, generator=g, dtype=dtype)
    return state._replace(controller=controller, access=access, read_vectors=read)


def grads_of(model, x, lengths, use_native, monkeypatch):
    """Output, final state and parameter/input gradients of the whole-sequence node, C or torch steps."""
    with monkeypatch.context() as m:
        if not use_native:
            m.setattr(native, "functions", lambda dtype: None)
        y, state = model(x, random_state(model, x.shape[0], x.dtype), lengths=lengths)
        assert type(y.grad_fn).__name__ != "StackBackward0"  # the whole-sequence node ran
        leaves = [state.controller.h, state.controller.c, state.read_vectors, *state.access[:2]]
        leaves += [state.access.link.link, state.access.link.precedence, *state.access[3:]]
        loss = (y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).square().sum()
        loss = loss + sum((leaf * (i + 1)).sum() for i, leaf in enumerate(leaves))  # every final state counts
        return [y, *leaves], torch.autograd.grad(loss, [x, *model.parameters()])


@needs_native
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("lengths", [None, torch.tensor([6, 3, 1])])
def test_c_step_equals_torch_step(dtype, lengths, monkeypatch):
    torch.manual_seed(0)
    # float32 with many slots: usages a few ulps apart sort differently in any two implementations (the readable
    # one included) and allocation jumps at a tie, so float32 compares on fewer slots (see random_state)
    n = 40 if dtype == torch.float64 else 8
    model = build_dnc(input_size=3, output_size=2, hidden_size=7, memory_size=n, word_size=5, num_reads=3).to(dtype)
    x = torch.randn(3, 6, 3, dtype=dtype, requires_grad=True)
    out_c, g_c = grads_of(model, x, lengths, True, monkeypatch)
    out_t, g_t = grads_of(model, x, lengths, False, monkeypatch)
    tol = {} if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    for a, b in zip([*out_c, *g_c], [*out_t, *g_t], strict=True):
        torch.testing.assert_close(a, b, **tol)


@needs_native
@pytest.mark.parametrize("n", [5, 64, 300])
def test_sort_is_torchs_stable_sort_from_any_start(n):
    sort = native.functions(torch.float64)["dnc_argsort"]
    g = torch.Generator().manual_seed(n)
    key = torch.randint(0, 4, (n,), generator=g).double()  # many ties: broken by slot order
    expected = torch.sort(key, stable=True).indices.int()
    phi, tmp = torch.empty(n, dtype=torch.int32), torch.empty(n, dtype=torch.int32)
    for start in (None, torch.randperm(n, generator=g).int(), expected.flip(0).contiguous()):
        phi.fill_(-1)
        sort(key.data_ptr(), phi.data_ptr(), None if start is None else start.data_ptr(), tmp.data_ptr(), n)
        assert torch.equal(phi, expected)


def test_c_constants_match_the_equations():
    source = (Path(native.__file__).parent / "dnc_native.c").read_text()
    assert float(re.search(r"#define EPSILON (\S+)", source).group(1)) == addressing.EPSILON


def test_without_a_compiler_the_torch_kernel_runs(monkeypatch, tmp_path):
    monkeypatch.delenv("MNEMONET_NATIVE", raising=False)  # the suite may run with the C kernels switched off
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("MNEMONET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    for name, value in (("_library", None), ("_reason", None), ("_tried", False)):
        monkeypatch.setattr(native, name, value)
    assert native.functions(torch.float64) is None
    assert "no C compiler" in native.unavailable_reason()
    torch.manual_seed(1)
    model = build_dnc(input_size=3, output_size=2, hidden_size=5, memory_size=6, word_size=4, num_reads=2).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    y, _ = model(x)
    y.sum().backward()  # the torch kernel: same node, same values (test_c_step_equals_torch_step)
    assert model.cell.output.weight.grad is not None


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv("MNEMONET_NATIVE", "0")
    for name, value in (("_library", None), ("_reason", None), ("_tried", False)):
        monkeypatch.setattr(native, name, value)
    assert native.library() is None and "MNEMONET_NATIVE" in native.unavailable_reason()


def test_workspaces_of_both_kernels_are_kept_apart(monkeypatch):
    torch.manual_seed(2)
    model = build_dnc(input_size=3, output_size=2, hidden_size=5, memory_size=6, word_size=4, num_reads=2).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64)
    dnc_sequence.release_workspaces()
    ys = []
    for use_native in (True, False, True):
        with monkeypatch.context() as m:
            if not use_native:
                m.setattr(native, "functions", lambda dtype: None)
            ys.append(model(x)[0].detach())
    for y in ys[1:]:
        torch.testing.assert_close(y, ys[0])


@needs_native
def test_huge_page_advice_keeps_the_contents():
    x = torch.arange(3 << 20, dtype=torch.float32)  # 12 MiB: several whole 2 MiB pages inside
    expected = x.clone()
    native.advise_huge(x)
    assert torch.equal(x, expected)
    assert native.library().dnc_advise_huge(x.data_ptr(), 100) == -1  # no whole 2 MiB page inside: nothing asked
