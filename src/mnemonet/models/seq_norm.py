"""Batch normalisation over time with separate statistics for every time step (Cooijmans et al., 2017, §3).

Recurrent batch normalisation keeps one set of statistics per time step t < ``max_length``: in training
each step is normalised with the batch statistics of that step (padded rows left out) and that step's
running (population) estimate is updated; in evaluation step t uses its own population estimate, and
steps past ``max_length`` use the last one. ``normalization="sequence"`` instead keeps a single set of
statistics taken over every non-padded step of a batch (sequence-wise normalisation, Laurent et al.,
2016). :class:`StepBatchNorm` normalises one step (the recurrent loop) or a whole batch-first sequence
at once (input terms, one batched operation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnemonet._checks import check_choice, check_positive

NORMALIZATIONS = ("step", "sequence")


def masked_moments(x: Tensor, mask: Tensor | None, dims: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """Mean and biased variance of ``x`` over ``dims``, counting only positions where ``mask`` is true.

    Args:
        x: `[..., F]` values; positions left out by ``mask`` may hold anything finite or not.
        mask: bool, broadcastable to ``x`` without its last axis plus a trailing 1 (e.g. `[B, 1]` for
            x `[B, F]`, `[B, T, 1]` for x `[B, T, F]`), or None to count every position.
        dims: axes to reduce over.

    Returns:
        ``(mean, var, count)``: mean and var shaped like ``x`` with ``dims`` removed, and the number of
        counted positions (a tensor shaped like mean without its last axis). Where nothing is
        counted, mean is 0 and var is 1.
    """
    if mask is None:
        mean = x.mean(dim=dims, keepdim=True)
        var = (x - mean).square().mean(dim=dims)  # torch.var_mean is slow over a leading axis on CPU
        n = 1
        for d in dims:
            n *= x.shape[d]
        count = torch.full(var.shape[:-1], n, dtype=x.dtype, device=x.device)
        return mean.reshape(var.shape), var, count
    count = mask.to(x.dtype).sum(dim=dims, keepdim=True)  # dims kept, trailing 1
    denom = count.clamp(min=1.0)
    mean = torch.where(mask, x, 0.0).sum(dim=dims, keepdim=True) / denom
    var = torch.where(mask, x - mean, 0.0).square().sum(dim=dims, keepdim=True) / denom
    var = torch.where(count > 0, var, 1.0)
    return mean.squeeze(dims), var.squeeze(dims), count.squeeze(dims).squeeze(-1)


def normalize(x: Tensor, mean: Tensor, var: Tensor, weight: Tensor, bias: Tensor | None, eps: float) -> Tensor:
    """BN(x; γ, β) = β + γ ⊙ (x − mean) / sqrt(var + ε)  (Cooijmans et al., eq. 5).

    Args:
        x: `[..., F]`.
        mean, var: broadcastable to ``x``.
        weight: γ `[F]`.
        bias: β `[F]`, or None for β = 0.
        eps: ε.
    """
    y = (x - mean) * torch.rsqrt(var + eps) * weight
    return y if bias is None else y + bias


class StepBatchNorm(nn.Module):
    """Batch normalisation of `[B, F]` activations with one set of statistics per time step.

    Args:
        num_features: F.
        max_length: number of time steps with their own statistics (``"step"``); steps past it use
            the statistics of step ``max_length - 1``.
        gamma_init: initial γ (the paper uses 0.1).
        shift: learn β (initialised to 0); without it β is fixed at 0.
        normalization: ``"step"`` (statistics per time step) or ``"sequence"`` (one set of statistics
            over all non-padded steps of a batch; :meth:`step` then uses the rows of its one step).
        momentum: weight of a new batch in the running statistics, as ``torch.nn.BatchNorm1d``;
            None for a cumulative average.
        eps: ε added to the variance.

    Buffers ``running_mean`` and ``running_var`` are `[L, F]` and ``num_batches_tracked`` `[L]`, with
    L = ``max_length`` (``"step"``) or 1 (``"sequence"``). Only steps t < L update them, and only where
    at least two rows are counted (the unbiased variance needs two).
    """

    def __init__(
        self,
        num_features: int,
        max_length: int,
        gamma_init: float = 0.1,
        shift: bool = False,
        normalization: str = "step",
        momentum: float | None = 0.1,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        check_positive(num_features, "num_features")
        check_positive(max_length, "max_length")
        check_choice(normalization, "normalization", NORMALIZATIONS)
        if momentum is not None and not 0.0 < momentum <= 1.0:
            raise ValueError(f"momentum: expected a float in (0, 1] or None, got {momentum!r}")
        if not eps > 0:
            raise ValueError(f"eps: expected a float > 0, got {eps!r}")
        self.num_features = num_features
        self.max_length = max_length
        self.gamma_init = float(gamma_init)
        self.normalization = normalization
        self.momentum = momentum
        self.eps = eps
        slots = max_length if normalization == "step" else 1
        self.weight = nn.Parameter(torch.empty(num_features))  # γ
        self.bias = nn.Parameter(torch.empty(num_features)) if shift else None  # β
        self.register_buffer("running_mean", torch.zeros(slots, num_features))
        self.register_buffer("running_var", torch.ones(slots, num_features))
        self.register_buffer("num_batches_tracked", torch.zeros(slots, dtype=torch.long))
        self.reset_parameters()

    @property
    def slots(self) -> int:
        """L: the number of separate sets of statistics."""
        return self.running_mean.shape[0]

    def reset_running_stats(self) -> None:
        """Forget the population statistics: mean 0, variance 1, no batches seen."""
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """γ = ``gamma_init``, β = 0, running statistics reset."""
        self.reset_running_stats()
        with torch.no_grad():
            self.weight.fill_(self.gamma_init)
            if self.bias is not None:
                self.bias.zero_()

    def extra_repr(self) -> str:
        parts = [f"{self.num_features}", f"max_length={self.max_length}", f"gamma_init={self.gamma_init}"]
        if self.bias is not None:
            parts.append("shift=True")
        if self.normalization != "step":
            parts.append(f"normalization={self.normalization!r}")
        if self.momentum != 0.1:
            parts.append(f"momentum={self.momentum}")
        if self.eps != 1e-5:
            parts.append(f"eps={self.eps}")
        return ", ".join(parts)

    def slot(self, t: int) -> int:
        """Which set of statistics step t uses: min(t, L − 1) (``"step"``) or 0 (``"sequence"``)."""
        return min(t, self.slots - 1)

    def _updates(self, t: int) -> bool:
        """Whether step t moves the running statistics (in training, steps t < L, or any with "sequence")."""
        return self.training and (t < self.slots or self.normalization == "sequence")

    def step(self, x: Tensor, t: int, mask: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        """Normalise the activations of time step t.

        Args:
            x: `[B, F]` activations of step t.
            t: time index (>= 0).
            mask: `[B]` bool, rows that are real (not padding); None for all rows.
            bias: an extra shift `[F]` added after normalisation (β + ``bias``); lets a caller fold a
                following bias into the normalisation.

        Returns:
            `[B, F]` normalised activations.
        """
        shift = _add(self.bias, bias)
        s = self.slot(t)
        update = self._updates(t)
        if not self.training:
            return F.batch_norm(x, self.running_mean[s], self.running_var[s], self.weight, shift, False, 0.0, self.eps)
        if mask is None and self.momentum is not None and x.shape[0] > 1:
            # fused kernel: batch statistics, normalisation and running-statistics update in one op
            rm, rv = (self.running_mean[s], self.running_var[s]) if update else (None, None)
            y = F.batch_norm(x, rm, rv, self.weight, shift, True, self.momentum, self.eps)
            if update:
                self.num_batches_tracked[s] += 1
            return y
        mean, var, count = masked_moments(x, None if mask is None else mask[:, None], (0,))
        if update:
            self._update(s, mean[None], var[None], count[None])
        return normalize(x, mean, var, self.weight, shift, self.eps)

    def sequence(self, x: Tensor, mask: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        """Normalise a whole batch-first sequence in one batched operation.

        With ``"step"`` normalisation, step t uses the statistics of its own rows (training) or of slot
        min(t, L − 1) (evaluation); with ``"sequence"``, one set of statistics over all counted (b, t).

        Args:
            x: `[B, T, F]` activations.
            mask: `[B, T]` bool, true at real (non-padded) steps; None for all.
            bias: extra shift `[F]` added after normalisation.

        Returns:
            `[B, T, F]` normalised activations.
        """
        shift = _add(self.bias, bias)
        B, T, Fd = x.shape
        if self.normalization == "sequence":
            if not self.training:
                return normalize(x, self.running_mean[0], self.running_var[0], self.weight, shift, self.eps)
            m = None if mask is None else mask[..., None]  # (B, T, 1)
            mean, var, count = masked_moments(x, m, (0, 1))
            self._update(0, mean[None], var[None], count.reshape(1))
            return normalize(x, mean, var, self.weight, shift, self.eps)
        L = self.slots
        if not self.training:
            idx = torch.arange(T, device=x.device).clamp(max=L - 1)
            return normalize(x, self.running_mean[idx], self.running_var[idx], self.weight, shift, self.eps)
        if mask is None and self.momentum is not None:
            # one fused batch_norm with T * F channels; slots [0, min(T, L)) update their statistics
            n = min(T, L)
            flat = x.reshape(B, T * Fd)  # (B, T*F)
            w = self.weight.repeat(T)  # (T*F,)
            b = None if shift is None else shift.repeat(T)  # (T*F,)
            head = F.batch_norm(
                flat[:, : n * Fd],
                self.running_mean[:n].view(-1),
                self.running_var[:n].view(-1),
                w[: n * Fd],
                None if b is None else b[: n * Fd],
                True,
                self.momentum,
                self.eps,
            )
            self.num_batches_tracked[:n] += 1
            if n == T:
                return head.reshape(B, T, Fd)  # (B, T, F)
            tail = F.batch_norm(
                flat[:, n * Fd :], None, None, w[n * Fd :], None if b is None else b[n * Fd :], True, 0.0, self.eps
            )
            return torch.cat([head, tail], 1).reshape(B, T, Fd)  # (B, T, F)
        m = None if mask is None else mask[..., None]  # (B, T, 1)
        mean, var, count = masked_moments(x, m, (0,))  # (T, F), (T, F), (T,)
        n = min(T, L)
        self._update(slice(0, n), mean[:n], var[:n], count[:n])
        return normalize(x, mean, var, self.weight, shift, self.eps)

    def fold(self, mean: Tensor, var: Tensor, count: Tensor) -> None:
        """Fold the batch statistics of steps 0..n-1 into their running statistics (slots 0..n-1).

        Args:
            mean, var: `[n, F]` batch means and biased variances, n <= L.
            count: `[n]` rows counted at each step (steps with fewer than 2 are skipped).
        """
        self._update(slice(0, mean.shape[0]), mean, var, count)

    @torch.no_grad()
    def _update(self, s: int | slice, mean: Tensor, var: Tensor, count: Tensor) -> None:
        """Fold batch statistics (`[n, F]`, counts `[n]`) into slots ``s``; only slots with count >= 2 move."""
        if isinstance(s, int):
            s = slice(s, s + 1)
        valid = count >= 2  # (n,)
        n_seen = self.num_batches_tracked[s] + valid.long()
        if self.momentum is None:
            factor = 1.0 / n_seen.clamp(min=1).to(mean.dtype)  # cumulative average
        else:
            factor = torch.full_like(count, self.momentum)
        factor = torch.where(valid, factor, 0.0)[:, None]  # (n, 1)
        unbiased = var * (count / (count - 1).clamp(min=1))[:, None]
        self.running_mean[s] += factor * (mean.detach() - self.running_mean[s])
        self.running_var[s] += factor * (unbiased.detach() - self.running_var[s])
        self.num_batches_tracked[s] = n_seen


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b
