"""oneDNN matmuls for the hand-written BN-LSTM loop: float32 on CPU, with a plain fallback.

torch's CPU matmul goes through BLAS; for the small, skinny products of a recurrent step (a batch of 16
rows against a weight of ~10^5 entries) oneDNN's kernel on a weight packed once per sequence is up to
twice as fast on some CPUs (torch's own fused CPU LSTM uses oneDNN too). The ops are torch's
(``torch.ops.mkldnn``); they are checked once against ``torch.mm`` and skipped where missing, off
(``torch.backends.mkldnn.enabled``), not float32, or not on CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

#: Use oneDNN's matmul kernels (as torch's fused CPU LSTM does) for float32 on CPU where torch has them.
USE_ONEDNN = True
_onednn_works: bool | None = None


def _onednn_available() -> bool:
    """Whether torch's oneDNN linear ops exist and agree with torch.mm (checked once)."""
    global _onednn_works
    if _onednn_works is None:
        try:
            a, w = torch.randn(3, 5), torch.randn(4, 5)
            packed = torch.ops.mkldnn._reorder_linear_weight(w, 3)
            y = torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")
            _onednn_works = bool(torch.allclose(y, a @ w.t(), atol=1e-5))
        except (AttributeError, RuntimeError, NotImplementedError):
            _onednn_works = False
    return _onednn_works


def use_onednn(t: Tensor) -> bool:
    """Whether matmuls with ``t`` run on oneDNN (CPU, float32, oneDNN enabled and working)."""
    return (
        USE_ONEDNN
        and t.device.type == "cpu"
        and t.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and _onednn_available()
    )


class PackedLinear:
    """x ↦ x @ wᵀ for many x `[B, K]` and one weight w `[N, K]`.

    On CPU in float32 it runs oneDNN's kernel on a weight packed once per sequence (about twice as fast
    as the BLAS matmul for these shapes on some CPUs); elsewhere ``torch.mm``.
    """

    def __init__(self, weight: Tensor, batch_size: int) -> None:
        self.onednn = use_onednn(weight)
        if self.onednn:
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), batch_size)
        else:
            self.weight_t = weight.t()  # (K, N)

    def __call__(self, x: Tensor, add: Tensor | None = None) -> Tensor:
        """x @ wᵀ (+ ``add``): `[B, K]` -> `[B, N]`."""
        if not self.onednn:
            return torch.mm(x, self.weight_t) if add is None else torch.addmm(add, x, self.weight_t)
        y = torch.ops.mkldnn._linear_pointwise(x.contiguous(), self.weight, None, "none", [], "")
        return y if add is None else y.add_(add)


class _LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        return torch.ops.mkldnn._linear_pointwise(x, weight, None, "none", [], "")

    @staticmethod
    @once_differentiable
    def backward(ctx, dy: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        dx = dw = None
        if ctx.needs_input_grad[0]:
            dx = PackedLinear(weight.t(), dy.shape[0])(dy)  # dy W: (N, K)
        if ctx.needs_input_grad[1]:
            dw = dy.t() @ x  # (M, K)
        return dx, dw


def linear(x: Tensor, weight: Tensor) -> Tensor:
    """``F.linear(x, weight)`` without bias, `[..., K]` -> `[..., M]` for weight `[M, K]`.

    On CPU in float32 the forward and the input gradient run oneDNN's kernels (first-order gradients
    only); elsewhere it is ``F.linear``.
    """
    if not use_onednn(weight) or x.dtype != weight.dtype or x.device != weight.device:
        return F.linear(x, weight)
    lead = x.shape[:-1]
    y = _LinearFn.apply(x.reshape(-1, x.shape[-1]).contiguous(), weight.contiguous())  # (N, M)
    return y.reshape(*lead, weight.shape[0])  # (..., M)
