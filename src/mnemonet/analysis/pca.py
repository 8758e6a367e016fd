"""Principal component analysis of hidden states, to draw trajectories and slow points in 2-D or 3-D.

Fitted by a singular value decomposition of the centred states in float64. Each component's sign is
fixed so that its largest-magnitude loading is positive, so refits on the same data give the same
picture. Works on any leading shape: trajectories `[B, T, S]` project to `[B, T, k]`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mnemonet._checks import check_positive, check_tensor


class PCA:
    """Principal components of states.

    Args:
        n_components: k, the number of components kept.

    Attributes (after :meth:`fit`):
        mean: `[S]` mean state.
        components: `[k, S]` orthonormal principal directions, by decreasing variance.
        explained_variance: `[k]` variance along each direction (unbiased, divided by N − 1).
        explained_variance_ratio: `[k]` fraction of the total variance.

    Example:
        >>> x = torch.randn(100, 5)
        >>> z = PCA(2).fit(x).transform(x)
        >>> tuple(z.shape)
        (100, 2)
    """

    def __init__(self, n_components: int = 3) -> None:
        check_positive(n_components, "n_components")
        self.n_components = n_components
        self.mean: Tensor | None = None
        self.components: Tensor | None = None
        self.explained_variance: Tensor | None = None
        self.explained_variance_ratio: Tensor | None = None

    def fit(self, states: Tensor, mask: Tensor | None = None) -> PCA:
        """Fit on states.

        Args:
            states: `[N, S]` rows, or `[B, T, S]` trajectories.
            mask: `[B, T]` bool selecting real steps of trajectories (or `[N]` for rows), or None for all.

        Returns:
            self.
        """
        if not isinstance(states, Tensor) or states.dim() not in (2, 3):
            got = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
            raise ValueError(f"states: expected shape (N, S) or (B, T, S), got {got}")
        if mask is not None:
            check_tensor(mask, "mask", tuple(states.shape[:-1]), floating=False)
            states = states[mask.bool()]  # (N, S)
        rows = states.reshape(-1, states.shape[-1]).detach().to(torch.float64)  # (N, S)
        N, S = rows.shape
        if N < 2:
            raise ValueError(f"states: expected at least 2 states to fit, got {N}")
        if self.n_components > min(N, S):
            raise ValueError(f"n_components: expected at most min(N, S) = {min(N, S)}, got {self.n_components}")
        self.mean = rows.mean(0)
        centred = rows - self.mean
        _, sv, vh = torch.linalg.svd(centred, full_matrices=False)  # vh: (min(N, S), S)
        k = self.n_components
        comps = vh[:k]
        biggest = comps.abs().argmax(1)  # (k,)
        signs = torch.sign(comps[torch.arange(k), biggest])
        self.components = comps * signs[:, None]
        var = sv.pow(2) / (N - 1)
        self.explained_variance = var[:k]
        total = var.sum()
        self.explained_variance_ratio = var[:k] / total if total > 0 else torch.zeros(k, dtype=var.dtype)
        return self

    def _check_fitted(self) -> tuple[Tensor, Tensor]:
        if self.mean is None or self.components is None:
            raise ValueError("pca: not fitted; call fit(states) first")
        return self.mean, self.components

    def transform(self, states: Tensor) -> Tensor:
        """Project `[..., S]` states to `[..., k]` (same dtype and device as ``states``)."""
        mean, comps = self._check_fitted()
        _check_last(states, "states", mean.shape[0], "S")
        z = (states.detach().to(torch.float64) - mean.to(states.device)) @ comps.to(states.device).T  # (..., k)
        return z.to(states.dtype)

    def inverse_transform(self, projected: Tensor) -> Tensor:
        """Map `[..., k]` coordinates back to `[..., S]` states in the fitted subspace."""
        mean, comps = self._check_fitted()
        k = comps.shape[0]
        _check_last(projected, "projected", k, "k")
        x = projected.to(torch.float64) @ comps.to(projected.device) + mean.to(projected.device)  # (..., S)
        return x.to(projected.dtype)

    def fit_transform(self, states: Tensor, mask: Tensor | None = None) -> Tensor:
        """:meth:`fit`, then :meth:`transform` of all ``states``."""
        return self.fit(states, mask).transform(states)


def _check_last(x: object, name: str, size: int, symbol: str) -> None:
    """Raise a ValueError unless ``x`` is a floating tensor `[..., size]`."""
    if not isinstance(x, Tensor) or x.dim() == 0 or x.shape[-1] != size or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a floating tensor of shape (..., {size}) ({symbol} = {size}), got {got}")
