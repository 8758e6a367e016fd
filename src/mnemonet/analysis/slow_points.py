"""Slow points: states where a model barely moves under a constant input, found by minimising its speed.

``find_slow_points`` minimises q(h) = ½‖F(h, I) − h‖² (Sussillo & Barak 2013; the "speed" of Haviv,
Rivkind & Barak, ICML 2019) from many initial states at once: one batched Adam optimisation over a
`[K, S]` tensor, with a plateau learning-rate schedule and stopping tolerances per point, and a step budget.
It then drops outliers, merges duplicates and returns a :class:`SlowPoints` container (after
mattgolub/fixed-point-finder) whose fields share axis 0, with the Jacobians dF/dh and their eigenvalues.
The model is seen only through the model contract (see :mod:`mnemonet.analysis.dynamics`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mnemonet._checks import check_positive, check_tensor
from mnemonet.analysis.dynamics import broadcast_inputs, jacobians, model_device, model_dtype, speed

Model = Any

_AXIS0 = ("states", "speeds", "converged", "origin", "jacobians", "eigenvalues", "labels")


@dataclass
class SlowPoints:
    """Slow points of a model under one constant input; every field but ``input`` shares axis 0.

    Attributes:
        states: `[K, S]` flat states h.
        speeds: `[K]` q(h) = ½‖F(h, I) − h‖².
        converged: `[K]` bool, the optimisation met a tolerance (q or its change) within its step budget.
        origin: `[K]` int64 index of the initial state each point was optimised from.
        jacobians: `[K, S, S]` dF/dh at each point (``J[k, i, j] = dF_i/dh_j``), or None.
        eigenvalues: `[K, S]` complex eigenvalues of each Jacobian, by decreasing magnitude, or None.
        labels: `[K]` int64 class of each point (per-class slow points), or None.
        input: `[D]` the constant input I, or None.
    """

    states: Tensor
    speeds: Tensor
    converged: Tensor
    origin: Tensor
    jacobians: Tensor | None = None
    eigenvalues: Tensor | None = None
    labels: Tensor | None = None
    input: Tensor | None = None

    def __post_init__(self) -> None:
        check_tensor(self.states, "states", ("K", "S"))
        K, S = self.states.shape
        check_tensor(self.speeds, "speeds", (K,))
        check_tensor(self.converged, "converged", (K,), floating=False)
        check_tensor(self.origin, "origin", (K,), floating=False)
        if self.jacobians is not None:
            check_tensor(self.jacobians, "jacobians", (K, S, S))
        if self.eigenvalues is not None:
            check_tensor(self.eigenvalues, "eigenvalues", (K, S), floating=False)
        if self.labels is not None:
            check_tensor(self.labels, "labels", (K,), floating=False)
        if self.input is not None:
            check_tensor(self.input, "input", ("D",))
        self.converged = self.converged.bool()
        self.origin = self.origin.long()
        if self.labels is not None:
            self.labels = self.labels.long()

    def __len__(self) -> int:
        return self.states.shape[0]

    def __getitem__(self, index: Tensor | slice | int | list[int]) -> SlowPoints:
        """The points selected by ``index`` (a bool mask, indices or a slice), as a new container."""
        if isinstance(index, int):
            index = [index]
        if isinstance(index, list):
            index = torch.as_tensor(index, dtype=torch.int64)
        kw = {f: (None if getattr(self, f) is None else getattr(self, f)[index]) for f in _AXIS0}
        return SlowPoints(**kw, input=self.input)

    def _order(self) -> Tensor:
        """`[K]` indices: converged points first, each group by increasing speed (NaN last)."""
        by_speed = torch.argsort(torch.nan_to_num(self.speeds.double(), nan=float("inf")), stable=True)
        first = torch.argsort((~self.converged[by_speed]).to(torch.int8), stable=True)
        return by_speed[first]

    def unique(self, tol: float = 1e-3) -> SlowPoints:
        """Merge points closer than ``tol`` (Euclidean); each cluster keeps its slowest converged member.

        Greedy: points are visited converged first, by increasing speed, and kept unless within ``tol``
        of a point already kept. The result is in that order.
        """
        if tol < 0:
            raise ValueError(f"tol: expected a distance >= 0, got {tol}")
        order = self._order()
        states = self.states.detach().to(torch.float64)
        kept: list[int] = []
        for i in order.tolist():
            if kept and torch.cdist(states[i][None], states[kept]).min() <= tol:
                continue
            kept.append(i)
        return self[torch.as_tensor(kept, dtype=torch.int64)]

    def is_stable(self, margin: float = 0.0) -> Tensor:
        """`[K]` bool: every eigenvalue of dF/dh inside the unit circle, |λ| < 1 − margin (discrete time).

        A marginal direction (|λ| = 1, as along a line attractor) counts as not stable.
        """
        if self.eigenvalues is None:
            raise ValueError("eigenvalues: none computed; use compute_jacobians(model) first")
        return self.eigenvalues.abs().amax(-1) < 1.0 - margin

    def compute_jacobians(self, model: Model, input: Tensor | None = None, t: int = 0) -> SlowPoints:
        """This container with ``jacobians`` and ``eigenvalues`` at every point.

        Args:
            model: the model the points belong to.
            input: `[D]` constant input; defaults to ``self.input``.
            t: time index passed to ``step``.
        """
        input = self.input if input is None else input
        if input is None:
            raise ValueError("input: expected the constant input (D,), this container has none")
        states = self.states.to(model_device(model), model_dtype(model))
        J = jacobians(model, states, input.to(states), t).detach().cpu()  # (K, S, S)
        eig = eigenvalues_by_magnitude(J)
        kw = {f: getattr(self, f) for f in _AXIS0 if f not in ("jacobians", "eigenvalues")}
        return SlowPoints(**kw, jacobians=J, eigenvalues=eig, input=input.detach().cpu())

    def save(self, path: str | Path) -> Path:
        """Write the fields to an ``.npz`` file (no pickled objects); returns the path."""
        path = Path(path)
        arrays = {
            f: getattr(self, f).detach().cpu().numpy() for f in (*_AXIS0, "input") if getattr(self, f) is not None
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SlowPoints:
        """Read a container written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as data:
            kw = {f.name: torch.from_numpy(data[f.name].copy()) for f in fields(cls) if f.name in data.files}
        missing = [f for f in ("states", "speeds", "converged", "origin") if f not in kw]
        if missing:
            raise ValueError(f"path: {path} is not a SlowPoints file (missing {missing})")
        return cls(**kw)


def eigenvalues_by_magnitude(J: Tensor) -> Tensor:
    """Eigenvalues of `[K, S, S]` matrices, each row sorted by decreasing magnitude: `[K, S]` complex128."""
    eig = torch.linalg.eigvals(J.to(torch.float64))  # (K, S)
    order = torch.argsort(eig.abs(), dim=-1, descending=True, stable=True)
    return torch.gather(eig, -1, order)


def outliers(states: Tensor, initial_states: Tensor, scale: float = 10.0) -> Tensor:
    """Points that ran far from where the search started.

    Rule: with c the centroid of the initial states and r the largest distance of an initial state from
    c, a point is an outlier when it is not finite or lies farther than ``scale · r`` from c. With a
    single distinct initial state (r = 0) only non-finite points are outliers.

    Args:
        states: `[K, S]` optimised states.
        initial_states: `[M, S]` initial states.
        scale: the distance scale.

    Returns:
        `[K]` bool, true for outliers.
    """
    if scale <= 0:
        raise ValueError(f"scale: expected a distance scale > 0, got {scale}")
    x0 = initial_states.detach().to(torch.float64)
    x = states.detach().to(torch.float64)
    c = x0.mean(0)
    r = (x0 - c).norm(dim=-1).max()
    bad = ~torch.isfinite(x).all(-1)
    if r > 0:
        bad |= (torch.nan_to_num(x, nan=0.0) - c).norm(dim=-1) > scale * r
    return bad


_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8  # Adam's defaults
_PLATEAU_THRESHOLD = 1e-4  # relative improvement that resets a point's plateau counter


def _minimise_speed(
    model: Model,
    x: Tensor,
    h0: Tensor,
    t: int,
    lr: float,
    max_steps: int,
    tol_q: float,
    tol_dq: float,
    lr_factor: float,
    lr_patience: int,
) -> tuple[Tensor, Tensor]:
    """Batched Adam on q with one plateau schedule per point; returns `[K, S]` states and `[K]` stopped flags.

    Every point has its own learning rate, multiplied by ``lr_factor`` after ``lr_patience`` steps
    without a relative improvement of its best q by ``_PLATEAU_THRESHOLD`` (as ``ReduceLROnPlateau``),
    so a point that has settled does not hold back the step size of one still travelling.
    """
    K = h0.shape[0]
    h = h0.clone()
    m = torch.zeros_like(h)  # Adam's first moment
    v = torch.zeros_like(h)  # Adam's second moment
    rate = torch.full((K,), lr, dtype=h.dtype, device=h.device)  # per-point learning rate
    best = torch.full((K,), float("inf"), dtype=h.dtype, device=h.device)
    since = torch.zeros(K, dtype=torch.int64, device=h.device)  # steps since the last improvement
    done = torch.zeros(K, dtype=torch.bool, device=h.device)
    q_prev = torch.full((K,), float("inf"), dtype=h.dtype, device=h.device)
    for step in range(1, max_steps + 1):
        hg = h.detach().requires_grad_(True)
        q = speed(model, hg, x, t)  # (K,)
        (grad,) = torch.autograd.grad(q.sum(), hg)
        q = q.detach()
        done |= (q < tol_q) | ((q_prev - q).abs() < tol_dq)
        if bool(done.all()):
            break
        m = _BETA1 * m + (1 - _BETA1) * grad
        v = _BETA2 * v + (1 - _BETA2) * grad * grad
        m_hat = m / (1 - _BETA1**step)
        v_hat = v / (1 - _BETA2**step)
        move = rate[:, None] * m_hat / (v_hat.sqrt() + _EPS)  # (K, S)
        h = h - move.masked_fill(done[:, None], 0.0)  # a stopped point stays where it stopped
        improved = q < best * (1 - _PLATEAU_THRESHOLD)
        best = torch.where(improved, q, best)
        since = torch.where(improved, 0, since + 1)
        cut = since > lr_patience
        rate = torch.where(cut, rate * lr_factor, rate)
        since = since.masked_fill(cut, 0)
        q_prev = q
    return h.detach(), done


def find_slow_points(
    model: Model,
    input: Tensor,
    initial_states: Tensor,
    *,
    lr: float = 1e-2,
    max_steps: int = 5000,
    tol_q: float = 1e-12,
    tol_dq: float = 1e-20,
    lr_factor: float = 0.5,
    lr_patience: int = 50,
    outlier_scale: float | None = 10.0,
    unique_tol: float | None = 1e-3,
    compute_jacobians: bool = True,
    t: int = 0,
) -> SlowPoints:
    """Minimise q(h) = ½‖F(h, I) − h‖² from K initial states at once.

    One batched optimisation: Adam on the `[K, S]` states, each point with its own plateau schedule
    (its learning rate multiplied by ``lr_factor`` when its q has not improved for ``lr_patience``
    steps, as ``ReduceLROnPlateau`` per point). A point stops (and is frozen) when q < ``tol_q`` or
    when q changed by less than ``tol_dq`` in one step; such points are ``converged``. The search ends
    when every point has stopped or after ``max_steps`` steps. Then outliers are dropped (see
    :func:`outliers`), points closer than ``unique_tol`` are merged (see :meth:`SlowPoints.unique`)
    and the Jacobians dF/dh and their eigenvalues are computed, batched.

    The model's parameters get no gradient; put the model in eval mode (dropout, batch statistics).

    Args:
        model: any model satisfying the contract.
        input: the constant input I, `[D]` or `[1, D]`, shared by all points (for delayed recall: the
            noise mean with the trigger off).
        initial_states: `[K, S]` flat initial states (e.g. sampled from trajectories with noise).
        lr: Adam's initial learning rate.
        max_steps: step budget.
        tol_q: stop a point when its speed is below this.
        tol_dq: stop a point when its speed changes by less than this in one step.
        lr_factor, lr_patience: the plateau schedule.
        outlier_scale: distance scale of the outlier rule, or None to keep every point.
        unique_tol: merge distance, or None to keep duplicates.
        compute_jacobians: also compute ``jacobians`` and ``eigenvalues``.
        t: time index passed to ``step`` (models with per-step parameters).

    Returns:
        :class:`SlowPoints` on the CPU.
    """
    check_tensor(initial_states, "initial_states", ("K", model.state_size))
    if initial_states.shape[0] == 0:
        raise ValueError(f"initial_states: expected at least one state, got shape (0, {model.state_size})")
    if not isinstance(input, Tensor) or input.dim() not in (1, 2) or (input.dim() == 2 and input.shape[0] != 1):
        got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
        raise ValueError(f"input: expected shape ({model.input_size},) or (1, {model.input_size}), got {got}")
    check_positive(max_steps, "max_steps")
    check_positive(lr_patience, "lr_patience", allow_zero=True)
    if lr <= 0 or not 0 < lr_factor < 1 or tol_q < 0 or tol_dq < 0:
        raise ValueError(
            f"lr, lr_factor, tol_q, tol_dq: expected lr > 0, 0 < lr_factor < 1 and tolerances >= 0, "
            f"got {lr}, {lr_factor}, {tol_q}, {tol_dq}"
        )
    dtype, device = model_dtype(model), model_device(model)
    x = broadcast_inputs(model, input.to(device, dtype), 1)  # (1, D)
    h0 = initial_states.detach().to(device, dtype)
    K = h0.shape[0]
    final, done = _minimise_speed(model, x, h0, t, lr, max_steps, tol_q, tol_dq, lr_factor, lr_patience)
    with torch.no_grad():
        q_final = speed(model, final, x, t)
    points = SlowPoints(
        states=final.cpu(),
        speeds=q_final.cpu(),
        converged=done.cpu(),
        origin=torch.arange(K),
        input=x[0].detach().cpu(),
    )
    if outlier_scale is not None:
        points = points[~outliers(points.states, h0.cpu(), outlier_scale)]
    if unique_tol is not None:
        points = points.unique(unique_tol)
    if compute_jacobians and len(points):
        points = points.compute_jacobians(model, t=t)
    return points
