"""BN-LSTM test helpers: a plain-loop reference with per-step statistics by hand, and a forward-backward runner.

Shared by tests/models/test_bn_lstm.py (the equations) and tests/kernels/test_bn_lstm_kernel.py (the kernel).
"""

from __future__ import annotations

import torch

from mnemonet.models.bn_lstm import BNLSTMCell, bn_lstm
from mnemonet.models.cells import LSTMState

I, H, L = 3, 4, 4  # input size, hidden size, max_length
VARIANTS = ["full", "input_only", "summed"]


# ----------------------------------------------------------------------------------------------------------
# the reference: one plain loop, statistics by hand
# ----------------------------------------------------------------------------------------------------------


def reference(cell: BNLSTMCell, x, lengths=None, training=True, state=None):
    """Plain-loop BN-LSTM. Returns y `[B, T, H]`, (h, c), and the batch statistics {name: {t: (mean, var, n)}}."""
    B, T, _ = x.shape
    real = torch.ones(B, T, dtype=torch.bool) if lengths is None else torch.arange(T)[None] < lengths[:, None]
    stats: dict[str, dict[int, tuple]] = {}

    def norm(name, v, t, rows):
        bn = getattr(cell, name)
        if training:
            sel = v[rows]  # only real rows count
            n = sel.shape[0]
            mean = sel.sum(0) / max(n, 1)
            var = ((sel - mean) ** 2).sum(0) / max(n, 1) if n else torch.ones_like(mean)
            stats.setdefault(name, {})[t] = (mean, var, n)
        else:
            slot = min(t, cell.max_length - 1)
            mean, var = bn.running_mean[slot], bn.running_var[slot]
        shift = 0.0 if bn.bias is None else bn.bias
        return bn.weight * (v - mean) / torch.sqrt(var + bn.eps) + shift

    wx_all = x @ cell.weight_ih.T  # (B, T, 4H)
    if cell.normalization == "sequence":
        if training:
            sel = wx_all[real]
            mean, var = sel.mean(0), ((sel - sel.mean(0)) ** 2).mean(0)
            stats["bn_x"] = {0: (mean, var, sel.shape[0])}
        else:
            mean, var = cell.bn_x.running_mean[0], cell.bn_x.running_var[0]
        ix_all = cell.bn_x.weight * (wx_all - mean) / torch.sqrt(var + cell.bn_x.eps)

    h = torch.zeros(B, cell.hidden_size, dtype=x.dtype) if state is None else state[0]
    c = torch.zeros(B, cell.hidden_size, dtype=x.dtype) if state is None else state[1]
    ys = []
    for t in range(T):
        rows = real[:, t]
        wx, wh = wx_all[:, t], h @ cell.weight_hh.T
        if cell.variant == "summed":
            pre = norm("bn_gates", wx + wh, t, rows) + cell.bias
        else:
            ix = ix_all[:, t] if cell.normalization == "sequence" else norm("bn_x", wx, t, rows)
            rec = norm("bn_h", wh, t, rows) if cell.variant == "full" else wh
            pre = rec + ix + cell.bias
        i, f, g, o = pre.chunk(4, 1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        c_out = norm("bn_c", c_new, t, rows) if cell.variant == "full" else c_new
        h_new = torch.sigmoid(o) * torch.tanh(c_out)
        h = torch.where(rows[:, None], h_new, h)
        c = torch.where(rows[:, None], c_new, c)
        ys.append(torch.where(rows[:, None], h_new, torch.zeros_like(h_new)))
    return torch.stack(ys, 1), (h, c), stats


def randomise(model, seed=1):
    """Random γ, β, biases and running statistics, so that no parameter sits at a special value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") or name.endswith("bias"):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen, dtype=p.dtype))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen, dtype=b.dtype) * 0.3)
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=gen, dtype=b.dtype))
    return model


def make(variant="full", normalization="step", **kw):
    return randomise(bn_lstm(I, H, L, variant=variant, normalization=normalization, **kw).double())


def run(model, x, lengths=None, path="fast", state=None):
    """Forward (fast sequence path or step loop), a loss touching y and the final state, backward."""
    model.zero_grad()
    if path == "fast":
        y, s = model(x, state=state, lengths=lengths)
    else:
        y, s, _ = model(x, state=state, lengths=lengths, return_states=True)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    h, c = (s.h, s.c) if isinstance(s, LSTMState) else (s[-1].h, s[-1].c)
    ((y * weights).sum() + (h**2).sum() + 0.3 * c.sum()).backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    return y.detach(), s, grads, buffers


def close(a, b, tol=1e-10):
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)
