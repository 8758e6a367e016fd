"""A whole-sequence RIMs kernel: eqs. (2)-(7) of Goyal et al. 2019 for all T steps as one autograd node.

At the sizes of the -small presets (6 modules of 16 units) a RIMs step is some forty small ops, and autograd's
record of each op (and the node it runs in backward) costs as much as the arithmetic. :class:`RIMsSequence`
runs the time loop into per-sequence buffers and has a hand-written backward that walks the steps in
reverse; every weight gradient is one matmul over all T·B rows after the loop.

On CPU, with the C library of :mod:`.native` built, a step is three torch matmuls and three C calls
(``rims_native_body.h``: the input attention, selection and LSTM update; the attention among modules; the
gated output and the residual), and its backward the same; the C code fuses what torch runs as ~40
small ops, including 256 6 × 6 attentions per step that ``bmm`` handles one matrix at a time, and computes
float32 exponentials with a vectorised polynomial. Elsewhere (GPU, no compiler, ``NATIVE = False``) the
same loop runs as torch ops; tests compare both paths (to 1e-12 in float64). Steps whose matmuls are small
(:data:`SERIAL_BELOW_FLOPS`) run on one intra-op thread.

The caller gives the input keys (pre-scaled by 1/sqrt(d_k)) and values of all steps (eq. 1). With one
input head and one input source (RIMs), the read is ``A_k = α_k (V ⊙ δ_k)`` (δ: the dropout noise of the
read), so the dynamics' input term is ``A_k W_ih[k] = α_k U_k`` with ``U_{t,k} = (V_t ⊙ δ_{t,k}) W_ih[k]``:
the largest matmul of the step runs once, before the loop, for all steps. The query map and W_hh both act
on h_{t−1}, so they are one ``bmm`` with the weight [W_hh | W^q]. The caller passes the dropout noise of all
steps (:func:`dropout_noise`, one counter-based draw per sequence, which the step loop draws too, so a seeded
run gives the step loop's numbers).

Workspaces: buffers and their views are made once per shape and reused (:mod:`.workspaces`,
here up to 512 MiB a workspace: the official sizes take about 300 MiB); fresh large buffers on every call
cost more in page faults than the arithmetic at these sizes. A ``bmm`` writes a step's slice of a
`[T, n, B, ...]` buffer (``bmm(out=)`` into a strided view is many times slower); buffers that weight
gradients read are `[n, T, B, ...]`, so each weight gradient is one ``bmm`` over all T·B rows.

Per step, with p the attention on the input (``1 − p`` on null), m the active set (eq. 5):

    p = σ(h W^q · K_t);  m = top-k(p − 1)                              (eqs. 2, 3, 5)
    gates = b + p U_t + h W_hh;  (h̃, c̃) = LSTM(gates, c)            (eq. 6, ``lstm_step.lstm_cell_forward``)
    o = offered (h̃, or where(m, h̃, h)); [q k v] = o W_qkv          (eq. 7)
    C = softmax(q k^T / sqrt(d_c)) v;  out = σ(C W_g + b_g) ⊙ tanh((C W_o + b_o) ⊙ δ')
    h' = where(m, h̃ + out, h),  c' = where(m, c̃, c)

Padded rows are rows with no active module, so they keep their state (the caller zeroes their outputs).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from mnemonet.kernels import native
from mnemonet.kernels.lstm_step import GateGradViews, GateViews, lstm_cell_backward, lstm_cell_forward
from mnemonet.kernels.tricks import SIGMOID_BACKWARD, TANH_BACKWARD_INTO, StepThreads
from mnemonet.kernels.tricks import per_step as _per_step
from mnemonet.kernels.workspaces import Lease, Pool, release_workspaces, storage_bytes


class RIMsOptions(NamedTuple):
    """The non-tensor settings of :class:`RIMsSequence`.

    Attributes:
        k: number of active modules per step.
        comm_heads: H_c.
        comm_key_size: d_c (keys and queries).
        comm_value_size: value size of the communication attention.
        by_score: select by the input score (``selection="score"``) instead of least attention on null.
        proposed: inactive modules offer their would-be update (``inactive_comm="proposed"``) rather than
            their kept state.
    """

    k: int
    comm_heads: int
    comm_key_size: int
    comm_value_size: int
    by_score: bool
    proposed: bool


def _softmax_(x: Tensor) -> Tensor:
    """Softmax over the last axis in place, written out: torch's kernel is slow for rows of a few entries."""
    e = x.sub_(x.amax(-1, keepdim=True)).exp_()
    return e.div_(e.sum(-1, keepdim=True))


def select(score: Tensor, k: int, real: Tensor | None, out: Tensor) -> Tensor:
    """Eq. (5): the k largest scores of each row (ties to the lower index), none in padded rows.

    Args:
        score: `[B, n]`.
        k: number to select.
        real: `[B]` bool, false in padded rows, or None.
        out: `[B, n]` bool, all false, written in place and returned.
    """
    if k == score.shape[1]:
        out.fill_(True)
    else:
        out.scatter_(1, torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :k], True)
    return out if real is None else out.logical_and_(real.unsqueeze(1))


_MASK32 = 0xFFFFFFFF
#: Let :class:`RIMsSequence` run a step's non-matmul parts and draw dropout noise in C (:mod:`.native`) where it is
#: built; off, or without a compiler, the torch ops of this module run (the same numbers to rounding).
NATIVE = True


def _native(x: Tensor) -> Any:
    """The C functions for ``x``'s dtype (CPU float32/float64, :data:`NATIVE` on, library built), else None."""
    return native.functions(x.dtype) if NATIVE and x.device.type == "cpu" else None


def _mul32(x: Tensor, c: int) -> Tensor:
    """``(x c) mod 2^32`` for an int64 tensor of values below 2^32, with no int64 overflow on the way."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _MASK32


def _mix32(x: Tensor) -> Tensor:
    """The 32-bit integer hash "lowbias32" (xor-shift, multiply, xor-shift, multiply, xor-shift) of rims_native.c."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def dropout_noise(shapes: list[tuple[int, ...]], p: float, like: Tensor) -> list[Tensor]:
    """Inverted-dropout noise for several tensors: each element ``1/(1 − p)`` with probability ``1 − p``, else 0.

    ``F.dropout`` draws a Bernoulli mask per call; at the sizes of a RIMs sequence (T steps of a `[B, n, d]` read
    and a `[B, n, hs]` output value) those draws took longer than the step's arithmetic (``aten::bernoulli_``:
    about 6 ns an element). This draw is counter-based: two 32-bit keys come from torch's default generator (so
    ``torch.manual_seed`` reproduces it), and element i of the shapes laid end to end is dropped when the top 24
    bits of ``mix(mix(i ⊕ key0) + key1)`` are below ``round(p 2^24)`` (mix: the 32-bit hash lowbias32, a
    well-mixed bijection). The probability is p rounded to a multiple of 2^-24. The C library
    (``rims_native.c``) and the torch ops here give the same bits, so a run's noise does not depend on whether
    a C compiler was found; the RIMs step loop draws its noise here too, so both paths see the same masks.

    Args:
        shapes: the shapes to draw, in order (together fewer than 2^32 elements).
        p: the dropout probability, in [0, 1).
        like: dtype and device of the results.

    Returns:
        One tensor per shape, of ``like``'s dtype and device.
    """
    if not 0 <= p < 1:
        raise ValueError(f"p: a dropout probability in [0, 1), got {p}")
    sizes = [math.prod(shape) for shape in shapes]
    if sum(sizes) >= 2**32:
        raise ValueError(f"shapes: fewer than 2^32 elements in all, got {sum(sizes)}")
    key0, key1 = torch.randint(0, 2**32, (2,)).tolist()
    threshold, scale = round(p * 2**24), 1.0 / (1.0 - p)
    fns, out, offset = _native(like), [], 0
    for shape, count in zip(shapes, sizes, strict=True):
        noise = like.new_empty(shape)
        if fns is not None:
            fns["rims_dropout_noise"](count, offset, key0, key1, threshold, scale, noise.data_ptr())
        else:
            i = torch.arange(offset, offset + count, dtype=torch.int64, device=like.device)
            bits = _mix32((_mix32(i ^ key0) + key1) & _MASK32)
            kept = (bits >> 8).ge_(threshold).view(shape)
            torch.mul(kept, torch.tensor(scale, dtype=like.dtype, device=like.device), out=noise)
        out.append(noise)
        offset += count
    return out


_POOL_MAX_BYTES = 512 * 2**20  # the official sizes (6 x 100 units, B = T = 64) take about 300 MiB
_FORWARD_POOL, _BACKWARD_POOL = Pool(_POOL_MAX_BYTES), Pool(_POOL_MAX_BYTES)


class _Buffers(NamedTuple):
    """Per-sequence buffers: `[T(+1), n, B, ...]` where a ``bmm`` writes a step (``bmm(out=)`` into a strided view
    is many times slower), `[n, T(+1), B, ...]` where a weight gradient reads all steps of a module."""

    h: Tensor  # h_0..h_T, (n, T + 1, B, hs)
    c: Tensor  # c_0..c_T
    gates: Tensor  # (T, n, B, 4 hs)
    sig: Tensor  # σ of the gates (σ(2 a_g) in the g block)
    g: Tensor  # tanh(a_g), (T, n, B, hs)
    c_dyn: Tensor  # c̃_t
    tc: Tensor  # tanh(c̃_t)
    h_dyn: Tensor  # h̃_t, (n, T, B, hs)
    offered: Tensor  # what each module offers to communication, (n, T, B, hs)
    hq: Tensor  # [h W_hh | h W^q]: recurrent gate terms and input queries, (T, n, B, 4 hs + d_k)
    qkv: Tensor  # communication queries, keys, values, per head [q k v], (T, n, B, H_c (2 d_c + d_v))
    comm: Tensor  # communication reads, (T, n, B, H_c d_v)
    act: Tensor  # [tanh(value), σ(gate)] of the output, (T, n, B, 2 hs)
    att: Tensor  # communication attention, (T, B H_c, n, n)
    read: Tensor  # V_t ⊙ δ_{t,k}, what each module reads with attention 1, (n, T B, d_v)
    gates_in: Tensor  # U = read W_ih, (n, T B, 4 hs)


def _gate_views(gates: Tensor, sig: Tensor, g: Tensor, c: Tensor, tc: Tensor) -> list[GateViews]:
    """One :class:`GateViews` of `[n, B, ...]` views per step of `[T, n, B, ...]` buffers."""
    return _per_step(GateViews, (gates, gates.chunk(4, -1)[2], sig, *sig.chunk(4, -1), g, c, tc), True)


def _rows(x: Tensor) -> Tensor:
    """`[n, T, B, X]` -> `[n, T B, X]` (a view): the rows of all steps of each module, for weight gradients."""
    return x.view(x.shape[0], -1, x.shape[-1])


class _ForwardLoop(NamedTuple):
    """What the forward time loops read and write."""

    buf: _Buffers  # written
    keys: Tensor  # (T, B, d_k), scaled by 1/sqrt(d_k)
    real: Tensor | None  # (T, B) bool
    value_noise: Tensor | None  # δ' of the output value, (T, B, n, hs)
    bias: Tensor  # (n, 4 hs)
    weights: tuple[Tensor, Tensor, Tensor, Tensor]  # w_hq, w_qkv, w_out, b_out
    p_all: Tensor  # written: attention on the input, (T, B, n)
    active_all: Tensor  # written: the active sets, (T, B, n) bool
    options: RIMsOptions


class _BackwardLoop(NamedTuple):
    """What the backward time loops read and write (besides the gradients they carry)."""

    buf: _Buffers
    keys: Tensor  # (T, B, d_k)
    value_noise: Tensor | None  # δ' of the output value, (T, B, n, hs)
    weights: tuple[Tensor, Tensor, Tensor]  # w_hq, w_qkv, w_out
    p_all: Tensor  # (T, B, n)
    active_all: Tensor  # (T, B, n) bool
    grads: tuple[Tensor, Tensor, Tensor, Tensor]  # written: see _backward_torch
    options: RIMsOptions


def _forward_torch(loop: _ForwardLoop, views: list[GateViews]) -> None:
    """The forward time loop in torch ops (see the module docstring), writing ``buf``, ``p_all`` and ``active_all``."""
    buf, keys, real, value_noise, bias, weights, p_all, active_all, options = loop
    w_hq, w_qkv, w_out, b_out = weights
    T, B, _ = keys.shape
    n, hs = w_hq.shape[0], w_hq.shape[1]
    G = 4 * hs
    Hc, dc, dv = options.comm_heads, options.comm_key_size, options.comm_value_size
    gates_in = buf.gates_in.view(n, T, B, G)
    bias3 = bias.unsqueeze(1)  # (n, 1, 4 hs)
    scale, unused = 1.0 / math.sqrt(dc), keys.new_empty(())
    for t in range(T):
        h, c = buf.h[:, t], buf.c[t]  # (n, B, hs)
        # eqs. (2)-(3): queries (with h W_hh in the same bmm), the input's score, attention p (null: 1 − p)
        hq = torch.bmm(h, w_hq, out=buf.hq[t])  # (n, B, 4 hs + dk)
        s = torch.bmm(hq[..., G:].transpose(0, 1), keys[t].unsqueeze(-1)).squeeze(-1)  # (B, n)
        p = torch.sigmoid(s, out=p_all[t])  # (B, n)
        # eq. (5): the active set; -null_attention = p − 1
        active = select(s if options.by_score else p - 1, options.k, None if real is None else real[t], active_all[t])
        m = active.t().unsqueeze(-1)  # (n, B, 1)
        # eq. (6): gates = b + p U_t + h W_hh, then the LSTM update
        v = views[t]
        torch.add(hq[..., :G], torch.addcmul(bias3, p.t().unsqueeze(-1), gates_in[:, t]), out=v.gates)
        h_dyn, c_dyn, _ = lstm_cell_forward(v, c, buf.h_dyn[:, t])
        torch.where(m, c_dyn, c, out=buf.c[t + 1])
        # eq. (7): communication among modules
        offered = h_dyn if options.proposed else torch.where(m, h_dyn, h, out=buf.offered[:, t])
        qkv = torch.bmm(offered, w_qkv, out=buf.qkv[t])  # (n, B, F)
        heads = qkv.view(n, B * Hc, -1).transpose(0, 1)  # (B Hc, n, 2 dc + dv)
        q, k_, v_ = heads.split([dc, dc, dv], -1)
        att = torch.baddbmm(unused, q, k_.transpose(1, 2), beta=0, alpha=scale, out=buf.att[t])
        _softmax_(att)  # (B Hc, n, n)
        comm = torch.bmm(att, v_).view(B, Hc, n, dv).permute(2, 0, 1, 3)  # (n, B, Hc, dv)
        comm = buf.comm[t].view(n, B, Hc, dv).copy_(comm).view(n * B, Hc * dv)
        og = torch.addmm(b_out, comm, w_out.t()).view(n, B, 2 * hs)  # (n, B, 2 hs): value, gate
        act = buf.act[t]
        value = og[..., :hs] if value_noise is None else og[..., :hs].mul_(value_noise[t].transpose(0, 1))
        torch.tanh(value, out=act[..., :hs])
        torch.sigmoid(og[..., hs:], out=act[..., hs:])
        out = act[..., :hs] * act[..., hs:]
        torch.where(m, out.add_(h_dyn), h, out=buf.h[:, t + 1])  # where(m, h̃ + out, h)


#: a step's matmuls below this many flops (2 n B hs (4 hs + d_k) for h [W_hh | W^q]) run on one intra-op thread
SERIAL_BELOW_FLOPS = 8e6


def _loop_threads(keys: Tensor, w_hq: Tensor) -> StepThreads:
    """Intra-op threads for the time loops: one where a step's matmuls are small (the -small presets' sizes: two
    threads split a `[64, 16] x [16, 80]` product per module at a loss, and each split waits for the slower
    thread on a shared machine); otherwise unchanged (``StepThreads`` switched off)."""
    n, hs, hq = w_hq.shape
    threads = StepThreads(keys.device.type == "cpu")
    threads.on = threads.on and 2 * n * keys.shape[1] * hs * hq < SERIAL_BELOW_FLOPS
    return threads


def _state_grad(g: Tensor | None, like: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """A fresh contiguous `[n, B, hs]` copy of a final-state gradient `[B, n, hs]` (zeros for None): the loops
    update it in place."""
    if g is None:
        return like.new_zeros(shape)
    return g.transpose(0, 1).clone(memory_format=torch.contiguous_format)


def _step_ptr(x: Tensor, t: int, axis: int = 0) -> int:
    """The address of index t along ``axis`` of ``x``."""
    return x.data_ptr() + t * x.stride(axis) * x.element_size()


def _forward_native(fns: dict[str, Any], loop: _ForwardLoop) -> None:
    """:func:`_forward_torch` with each step's non-matmul parts in three C calls (``rims_native_body.h``).

    Per step: ``hq = h W_hq`` (torch), ``rims_step_forward`` (eqs. 2-6 and the offered state), ``qkv =
    offered W_qkv`` (torch), ``rims_comm_forward`` (the attention among modules), ``og = comm W_out^T + b_out``
    (torch), ``rims_out_forward`` (the gated output and the residual). ``buf.gates`` is not written (the
    backward reads σ of the gates only).
    """
    buf, keys, real, value_noise, bias, weights, p_all, active_all, options = loop
    w_hq, w_qkv, w_out, b_out = weights
    T, B, dk = keys.shape
    n, hs = w_hq.shape[0], w_hq.shape[1]
    Hc, dc, dv = options.comm_heads, options.comm_key_size, options.comm_value_size
    step, comm_step, out_step = fns["rims_step_forward"], fns["rims_comm_forward"], fns["rims_out_forward"]
    scale = 1.0 / math.sqrt(dc)
    bias = bias.contiguous()
    og = keys.new_empty(n, B, 2 * hs)
    og_rows = og.view(n * B, 2 * hs)
    offered = buf.h_dyn if options.proposed else buf.offered
    dims = (n, B, hs, dk, options.k, int(options.by_score), int(options.proposed))
    u_ms = buf.gates_in.stride(0)  # (n, T B, 4 hs): step t at row t B
    h_ms, hd_ms = buf.h.stride(0), buf.h_dyn.stride(0)
    for t in range(T):
        h = buf.h[:, t]  # (n, B, hs)
        torch.bmm(h, w_hq, out=buf.hq[t])  # [h W_hh | h W^q]
        h_ptr, hd_ptr = _step_ptr(buf.h, t, 1), _step_ptr(buf.h_dyn, t, 1)
        step(
            *dims, _step_ptr(buf.hq, t), _step_ptr(keys, t), _step_ptr(buf.gates_in, t * B, 1),
            u_ms, bias.data_ptr(), h_ptr, h_ms, _step_ptr(buf.c, t), None if real is None else _step_ptr(real, t),
            _step_ptr(p_all, t), _step_ptr(active_all, t), _step_ptr(buf.sig, t), _step_ptr(buf.g, t),
            _step_ptr(buf.c_dyn, t), _step_ptr(buf.tc, t), hd_ptr, hd_ms, _step_ptr(buf.c, t + 1),
            _step_ptr(offered, t, 1), offered.stride(0),
        )  # fmt: skip
        torch.bmm(offered[:, t], w_qkv, out=buf.qkv[t])  # (n, B, F)
        comm_step(n, B, Hc, dc, dv, scale, _step_ptr(buf.qkv, t), _step_ptr(buf.att, t), _step_ptr(buf.comm, t))
        torch.addmm(b_out, buf.comm[t].view(n * B, Hc * dv), w_out.t(), out=og_rows)
        out_step(
            n, B, hs, og.data_ptr(), None if value_noise is None else _step_ptr(value_noise, t),
            _step_ptr(active_all, t), hd_ptr, hd_ms, h_ptr, h_ms, _step_ptr(buf.act, t), _step_ptr(buf.h, t + 1, 1),
            h_ms,
        )  # fmt: skip


class RIMsSequence(torch.autograd.Function):
    """RIMs with LSTM dynamics over a whole sequence, one input head, gated-tanh communication output.

    Inputs (``n`` modules of ``hs`` units, ``F = H_c (2 d_c + d_v)``):

    - ``keys`` `[T, B, d_k]` input keys divided by sqrt(d_k); ``values`` `[T, B, d_v]` input values;
    - ``h0``, ``c0`` `[B, n, hs]`; ``real`` `[T, B]` bool, false at padded steps, or None;
    - ``read_noise`` `[T, B, n, d_v]` and ``value_noise`` `[T, B, n, hs]`: dropout noise of the read and of the
      output value (:func:`dropout_noise`), or None for no dropout;
    - ``w_ih`` `[n, d_v, 4 hs]`, ``w_hq`` `[n, hs, 4 hs + d_k]` = [W_hh | W^q], ``bias`` `[n, 4 hs]`
      (b_ih + b_hh), ``w_qkv`` `[n, hs, F]` (columns per head: q, k, v), ``w_out`` `[2 hs, H_c d_v]` and
      ``b_out`` `[2 hs]` (rows: value, then gate);
    - ``options``: :class:`RIMsOptions`.

    Returns ``(y [B, T, n hs], h_T, c_T [B, n, hs], active [T, B, n])``; ``active`` has no gradient.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        keys: Tensor,
        values: Tensor,
        h0: Tensor,
        c0: Tensor,
        real: Tensor | None,
        read_noise: Tensor | None,
        value_noise: Tensor | None,
        w_ih: Tensor,
        w_hq: Tensor,
        bias: Tensor,
        w_qkv: Tensor,
        w_out: Tensor,
        b_out: Tensor,
        options: RIMsOptions,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        T, B, dk = keys.shape
        n, hs = w_hq.shape[0], w_hq.shape[1]
        Hc, dv = options.comm_heads, options.comm_value_size
        F_, d_in = w_qkv.shape[-1], values.shape[-1]
        key = (T, B, n, hs, dk, d_in, F_, Hc, dv, options.proposed, keys.dtype, keys.device)

        def make() -> tuple[_Buffers, list[GateViews], int]:
            new = keys.new_empty
            b = _Buffers(
                h=new(n, T + 1, B, hs),
                c=new(T + 1, n, B, hs),
                gates=new(T, n, B, 4 * hs),
                sig=new(T, n, B, 4 * hs),
                g=new(T, n, B, hs),
                c_dyn=new(T, n, B, hs),
                tc=new(T, n, B, hs),
                h_dyn=new(n, T, B, hs),
                offered=new(n, T, B, hs) if not options.proposed else new(0),
                hq=new(T, n, B, 4 * hs + dk),
                qkv=new(T, n, B, F_),
                comm=new(T, n, B, Hc * dv),
                act=new(T, n, B, 2 * hs),
                att=new(T, B * Hc, n, n),
                read=new(n, T * B, d_in),
                gates_in=new(n, T * B, 4 * hs),
            )
            return b, _gate_views(b.gates, b.sig, b.g, b.c_dyn, b.tc), storage_bytes(*b)

        workspace = _FORWARD_POOL.take(key, make)
        buf, views, nbytes = workspace
        new = keys.new_empty
        # U_{t,k} = (V_t ⊙ δ_{t,k}) W_ih[k] for all steps: one bmm
        read = buf.read.view(n, T, B, d_in)
        if read_noise is None:
            read.copy_(values.unsqueeze(0).expand(n, T, B, d_in))
        else:
            torch.mul(values.unsqueeze(0), read_noise.permute(2, 0, 1, 3), out=read)
        torch.bmm(buf.read, w_ih, out=buf.gates_in)
        buf.h[:, 0] = h0.transpose(0, 1)
        buf.c[0] = c0.transpose(0, 1)
        p_all = new(T, B, n)  # attention on the input
        active_all = torch.zeros(T, B, n, dtype=torch.bool, device=keys.device)
        weights = (w_hq, w_qkv, w_out, b_out)
        fns = _native(keys)
        real = None if real is None else real.contiguous()
        if value_noise is not None:
            value_noise = value_noise.contiguous()
        if fns is not None:
            keys = keys.contiguous()
        threads = _loop_threads(keys, w_hq)
        try:
            threads.one()
            loop = _ForwardLoop(buf, keys, real, value_noise, bias, weights, p_all, active_all, options)
            if fns is not None:
                _forward_native(fns, loop)
            else:
                _forward_torch(loop, views)
        finally:
            threads.all()
        ctx.save_for_backward(keys, w_ih, w_hq, w_qkv, w_out, p_all, active_all, read_noise, value_noise)
        ctx.lease = Lease(_FORWARD_POOL, key, workspace, nbytes)  # back to the pool when ctx lets go
        ctx.buf, ctx.views, ctx.options = buf, views, options
        ctx.set_materialize_grads(False)
        y = buf.h[:, 1:].permute(2, 1, 0, 3).reshape(B, T, n * hs)  # (B, T, n hs)
        ctx.mark_non_differentiable(active_all)
        return y, buf.h[:, T].transpose(0, 1).clone(), buf.c[T].transpose(0, 1).clone(), active_all

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_y: Tensor | None, g_hT: Tensor | None, g_cT: Tensor | None, _: Any):  # type: ignore[override]
        keys, w_ih, w_hq, w_qkv, w_out, p_all, active_all, read_noise, value_noise = ctx.saved_tensors
        buf, gate_views, options = ctx.buf, ctx.views, ctx.options
        T, B, dk = keys.shape
        n, hs = w_hq.shape[0], w_hq.shape[1]
        G = 4 * hs
        Hc, dv = options.comm_heads, options.comm_value_size
        F_, d_in = w_qkv.shape[-1], buf.read.shape[-1]
        key = (T, B, n, hs, dk, d_in, F_, Hc, dv, keys.dtype, keys.device)

        def make() -> tuple[Any, ...]:
            new = keys.new_empty  # by module, (n, T, B, ...), but ∂L/∂[value, gate] of the output (T, n, B, 2 hs)
            g_hq = new(n, T, B, G + dk)  # ∂L/∂[gates | input query]
            bufs = (g_hq, new(n, T, B, F_), new(T, n, B, 2 * hs), new(n, T * B, d_in))
            parts = (g_hq[..., :G], *g_hq[..., :G].chunk(4, -1))
            views = _per_step(GateGradViews, tuple(x.transpose(0, 1) for x in parts), True)
            return bufs, views, storage_bytes(*bufs)

        workspace = _BACKWARD_POOL.take(key, make)
        (g_hq_all, g_qkv_all, g_og_all, g_read), grad_views, nbytes = workspace
        g_keys = keys.new_empty(T, B, dk)
        g_h, g_c = (_state_grad(g, keys, (n, B, hs)) for g in (g_hT, g_cT))  # (n, B, hs), contiguous, ours
        grads, weights = (g_hq_all, g_qkv_all, g_og_all, g_keys), (w_hq, w_qkv, w_out)
        fns, state = _native(keys), (g_h, g_c)
        loop = _BackwardLoop(buf, keys, value_noise, weights, p_all, active_all, grads, options)
        threads = _loop_threads(keys, w_hq)
        try:
            threads.one()
            if fns is not None:
                g_y = None if g_y is None else g_y.contiguous()
                g_h, g_c = _backward_native(fns, loop, g_y, state)
            else:
                g_h, g_c = _backward_torch(loop, (gate_views, grad_views), g_y, state)
        finally:
            threads.all()
        # weight gradients: one matmul over all T B rows
        h_prev = buf.h[:, :T].reshape(n, T * B, hs).transpose(1, 2)  # (n, hs, T B), a view
        g_w_hq = torch.bmm(h_prev, _rows(g_hq_all))
        g_bias = _rows(g_hq_all)[..., :G].sum(1)
        offered = _rows(buf.h_dyn if options.proposed else buf.offered)
        g_w_qkv = torch.bmm(offered.transpose(1, 2), _rows(g_qkv_all))
        g_og = g_og_all.view(T * n * B, 2 * hs)
        g_w_out = torch.mm(g_og.t(), buf.comm.view(T * n * B, Hc * dv))
        g_b_out = g_og.sum(0)
        # U = read W_ih with ∂L/∂U = p ∂L/∂gates; read = V ⊙ δ
        g_u = g_hq_all[..., :G].mul_(p_all.permute(2, 0, 1).unsqueeze(-1)).reshape(n, T * B, G)  # a view
        g_w_ih = torch.bmm(buf.read.transpose(1, 2), g_u)
        torch.bmm(g_u, w_ih.transpose(1, 2), out=g_read)  # (n, T B, d_v)
        if read_noise is not None:
            g_read.view(n, T, B, d_in).mul_(read_noise.permute(2, 0, 1, 3))
        g_values = g_read.view(n, T, B, d_in).sum(0)  # (T, B, d_v)
        _BACKWARD_POOL.give(key, workspace, nbytes)
        return (
            g_keys,
            g_values,
            g_h.transpose(0, 1),
            g_c.transpose(0, 1),
            None,
            None,
            None,
            g_w_ih,
            g_w_hq,
            g_bias,
            g_w_qkv,
            g_w_out,
            g_b_out,
            None,
        )


def _backward_torch(
    loop: _BackwardLoop,
    views: tuple[list[GateViews], list[GateGradViews]],
    g_y: Tensor | None,
    state: tuple[Tensor, Tensor],
) -> tuple[Tensor, Tensor]:
    """The backward time loop in torch ops: writes ``grads`` (∂L/∂[gates | input query] `[n, T, B, 4 hs + d_k]`,
    ∂L/∂qkv `[n, T, B, F]`, ∂L/∂[value, gate] `[T, n, B, 2 hs]`, ∂L/∂keys `[T, B, d_k]`) and returns
    (∂L/∂h_0, ∂L/∂c_0) `[n, B, hs]`."""
    buf, keys, value_noise, weights, p_all, active_all, grads, options = loop
    g_h, g_c = state
    w_hq, w_qkv, w_out = weights
    g_hq_all, g_qkv_all, g_og_all, g_keys = grads
    gate_views, grad_views = views
    T, B, _ = keys.shape
    n, hs = w_hq.shape[0], w_hq.shape[1]
    G = 4 * hs
    Hc, dc, dv = options.comm_heads, options.comm_key_size, options.comm_value_size
    scale = 1.0 / math.sqrt(dc)
    gates_in = buf.gates_in.view(n, T, B, G)
    g_p_all = keys.new_empty(T, n, B)
    zero = keys.new_zeros(())
    g_y4 = None if g_y is None else g_y.view(B, T, n, hs)
    w_hq_t, w_qkv_t = w_hq.transpose(1, 2), w_qkv.transpose(1, 2)
    for t in reversed(range(T)):
        if g_y4 is not None:
            g_h = g_h + g_y4[:, t].transpose(0, 1)  # (n, B, hs)
        m = active_all[t].t().unsqueeze(-1)  # (n, B, 1)
        c = buf.c[t]
        # h' = where(m, h̃ + out, h): g_a reaches h̃ and out
        g_a = torch.where(m, g_h, zero)
        g_h_prev = g_h - g_a
        # out = σ(gate) ⊙ tanh(value ⊙ δ')
        act, g_og = buf.act[t], g_og_all[t]
        tv, sg = act[..., :hs], act[..., hs:]
        TANH_BACKWARD_INTO(g_a * sg, tv, grad_input=g_og[..., :hs])
        if value_noise is not None:
            g_og[..., :hs].mul_(value_noise[t].transpose(0, 1))
        SIGMOID_BACKWARD(g_a * tv, sg, grad_input=g_og[..., hs:])
        g_comm = torch.mm(g_og.reshape(n * B, 2 * hs), w_out).view(n, B, Hc, dv).permute(1, 2, 0, 3)
        g_comm = g_comm.reshape(B * Hc, n, dv)
        # C = softmax(q k^T / sqrt(d_c)) v
        att = buf.att[t]
        heads = buf.qkv[t].view(n, B * Hc, -1).transpose(0, 1)
        q, k_, v_ = heads.split([dc, dc, dv], -1)
        g_att = torch.bmm(g_comm, v_.transpose(1, 2))  # (B Hc, n, n)
        g_s = (g_att - (g_att * att).sum(-1, keepdim=True)).mul_(att).mul_(scale)
        g_heads = torch.cat([torch.bmm(g_s, k_), torch.bmm(g_s.transpose(1, 2), q), torch.bmm(att.mT, g_comm)], -1)
        g_qkv = g_qkv_all[:, t]  # (n, B, F)
        g_qkv.view(n, B * Hc, -1).copy_(g_heads.transpose(0, 1))
        g_offered = torch.bmm(g_qkv, w_qkv_t)  # (n, B, hs)
        # what was offered: h̃ (its gradient kept only where active), or where(m, h̃, h)
        if options.proposed:
            g_h_dyn = torch.where(m, g_a + g_offered, zero)
        else:
            g_tilde = g_a + g_offered
            g_h_dyn = torch.where(m, g_tilde, zero)
            g_h_prev = g_h_prev + (g_tilde - g_h_dyn)
        g_c_dyn = torch.where(m, g_c, zero)
        g_c_prev = g_c - g_c_dyn
        # the LSTM update, then gates = b + p U_t + h W_hh
        v = gate_views[t]
        saved = (v.sig, v.i, v.f, v.o, v.g, v.tc)
        g_gates, g_c_from = lstm_cell_backward(saved, c, g_h_dyn, g_c_dyn, grad_views[t])
        g_c = g_c_prev.add_(g_c_from)
        g_p = torch.mul(g_gates, gates_in[:, t]).sum(-1)  # (n, B)
        # p = σ(s), s = q_in · key_t
        g_s_in = SIGMOID_BACKWARD(g_p, p_all[t].t(), grad_input=g_p_all[t])  # (n, B)
        g_hq = g_hq_all[:, t]  # (n, B, 4 hs + dk): [∂L/∂gates | ∂L/∂q_in]
        torch.mul(g_s_in.unsqueeze(-1), keys[t], out=g_hq[..., G:])  # (n, B, dk)
        torch.bmm(g_s_in.t().unsqueeze(1), buf.hq[t][..., G:].transpose(0, 1), out=g_keys[t].unsqueeze(1))
        g_h = torch.baddbmm(g_h_prev, g_hq, w_hq_t)  # through h W_hh and h W^q
    return g_h, g_c


def _backward_native(
    fns: dict[str, Any], loop: _BackwardLoop, g_y: Tensor | None, state: tuple[Tensor, Tensor]
) -> tuple[Tensor, Tensor]:
    """:func:`_backward_torch` with each step's non-matmul parts in three C calls (``rims_native_body.h``).

    Per step, in reverse: ``rims_out_backward``, ``∂comm = ∂og W_out`` (torch), ``rims_comm_backward``,
    ``∂offered = ∂qkv W_qkv^T`` (torch), ``rims_step_backward``, ``∂h_{t−1} += ∂[gates | q] [W_hq]^T`` (torch).
    ``g_h`` and ``g_c`` must be contiguous `[n, B, hs]` (``g_c`` is updated in place).
    """
    buf, keys, value_noise, weights, p_all, active_all, grads, options = loop
    g_h, g_c = state
    w_hq, w_qkv, w_out = weights
    g_hq_all, g_qkv_all, g_og_all, g_keys = grads
    T, B, dk = keys.shape
    n, hs = w_hq.shape[0], w_hq.shape[1]
    Hc, dc, dv = options.comm_heads, options.comm_key_size, options.comm_value_size
    scale = 1.0 / math.sqrt(dc)
    out_back, comm_back, step_back = fns["rims_out_backward"], fns["rims_comm_backward"], fns["rims_step_backward"]
    new = keys.new_empty
    g_a, g_offered, g_comm, g_next = new(n, B, hs), new(n, B, hs), new(n * B, Hc * dv), new(n, B, hs)
    w_hq_t, w_qkv_t = w_hq.transpose(1, 2), w_qkv.transpose(1, 2)
    u_ms = buf.gates_in.stride(0)  # (n, T B, 4 hs): step t at row t B
    gy_bs = 0 if g_y is None else g_y.stride(0)  # g_y: (B, T, n hs)
    ptrs = (g_a.data_ptr(), g_offered.data_ptr(), g_comm.data_ptr())
    for t in reversed(range(T)):
        active = _step_ptr(active_all, t)
        out_back(
            n, B, hs, None if g_y is None else _step_ptr(g_y, t, 1), gy_bs, g_h.data_ptr(), ptrs[0],
            _step_ptr(buf.act, t), None if value_noise is None else _step_ptr(value_noise, t), active,
            _step_ptr(g_og_all, t),
        )  # fmt: skip
        torch.mm(g_og_all[t].view(n * B, 2 * hs), w_out, out=g_comm)
        comm_back(
            n, B, Hc, dc, dv, scale, ptrs[2], _step_ptr(buf.att, t), _step_ptr(buf.qkv, t),
            _step_ptr(g_qkv_all, t, 1), g_qkv_all.stride(0),
        )  # fmt: skip
        torch.bmm(g_qkv_all[:, t], w_qkv_t, out=g_offered)
        step_back(
            n, B, hs, dk, int(options.proposed), ptrs[0], ptrs[1], g_h.data_ptr(), g_c.data_ptr(), active,
            _step_ptr(buf.sig, t), _step_ptr(buf.g, t), _step_ptr(buf.tc, t), _step_ptr(buf.c, t),
            _step_ptr(buf.gates_in, t * B, 1), u_ms, _step_ptr(p_all, t), _step_ptr(keys, t), _step_ptr(buf.hq, t),
            _step_ptr(g_hq_all, t, 1), g_hq_all.stride(0), _step_ptr(g_keys, t),
        )  # fmt: skip
        torch.baddbmm(g_h, g_hq_all[:, t], w_hq_t, out=g_next)  # through h W_hh and h W^q
        g_h, g_next = g_next, g_h
    return g_h, g_c


def rims_sequence(
    keys: Tensor,
    values: Tensor,
    h0: Tensor,
    c0: Tensor,
    real: Tensor | None,
    noise: tuple[Tensor, Tensor] | None,
    weights: tuple[Tensor, ...],
    options: RIMsOptions,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:class:`RIMsSequence` applied; ``noise`` = (read noise, value noise) or None, ``weights`` = (w_ih, w_hq,
    bias, w_qkv, w_out, b_out)."""
    read_noise, value_noise = (None, None) if noise is None else noise
    return RIMsSequence.apply(keys, values, h0, c0, real, read_noise, value_noise, *weights, options)


__all__ = ["NATIVE", "RIMsOptions", "RIMsSequence", "dropout_noise", "release_workspaces", "rims_sequence", "select"]
