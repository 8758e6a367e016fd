"""Slow points: states where a model barely moves under a constant input, found by minimising its speed.

``find_slow_points`` minimises q(h) = ½‖F(h, I) − h‖² (Sussillo & Barak 2013; Haviv, Rivkind & Barak,
ICML 2019 call ‖F(h, I) − h‖² = 2q the speed) from many initial states at once: one batched Adam
optimisation over a `[K, S]` tensor, with a plateau learning-rate schedule per point and a step budget,
then a float64 Levenberg–Marquardt polish on the residual F(h, I) − h with the batched Jacobians. A point
*converges* only when q < tol_q or ‖∇q‖ < tol_grad (both scaled to the dtype and the state size, see
:func:`default_tolerances`); a point whose q stopped improving for a long run of steps is *stalled*, one
that left the states the model can reach (``model.state_bounds()``) is *out of bounds*; every point records
its ``stop_reason`` and ``iterations``. Outliers are dropped, duplicates merged, and the result is a
:class:`SlowPoints` container (after mattgolub/fixed-point-finder) whose fields share axis 0, with the
Jacobians dF/dh, their eigenvalues and a ``stability`` label. :func:`find_attractors` finds the stable fixed
points the other way: by running the network forward and polishing where trajectories end.
The model is seen only through the model contract (see :mod:`mnemonet.analysis.dynamics`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from mnemonet._checks import check_positive, check_tensor
from mnemonet.analysis.dynamics import broadcast_inputs, jacobians, model_device, model_dtype, speed, transition

Model = Any

_AXIS0 = ("states", "speeds", "converged", "origin", "iterations", "stop_reason", "jacobians", "eigenvalues",
          "labels")  # fmt: skip
STOP_REASONS = ("converged", "stalled", "max_steps", "out_of_bounds")  # the codes of ``stop_reason``
CONVERGED, STALLED, MAX_STEPS, OUT_OF_BOUNDS = range(4)
STABILITY_MARGIN = 1e-3  # |λ| within 1 ± this is marginal (see SlowPoints.stability)
STABILITY_LABELS = ("stable", "marginal", "unstable")


def default_tolerances(dtype: torch.dtype, state_size: int) -> tuple[float, float]:
    """``(tol_q, tol_grad)`` for a search in ``dtype`` over `S`-dimensional states.

    One step F(h, I) − h carries a rounding error of about ε (the dtype's machine epsilon) per coordinate,
    so ‖F(h, I) − h‖² cannot be resolved below about S·ε². A point converges when q = ½‖F − h‖² is below
    ``tol_q = ½ · S · (10 ε)²`` (100 times that floor) or when its gradient ‖∇q‖ = ‖(J − I)ᵀ(F − h)‖ is
    below ``tol_grad = 10 ε √S`` (a local minimum of q that is not a fixed point: a slow point proper).
    float32, S = 100: tol_q ≈ 7.1e-11, tol_grad ≈ 1.2e-5; float64, S = 100: 2.5e-27 and 2.2e-14.
    """
    eps = torch.finfo(dtype).eps
    return 0.5 * state_size * (10 * eps) ** 2, 10 * eps * math.sqrt(state_size)


@dataclass
class SlowPoints:
    """Slow points of a model under one constant input; every field but ``input`` shares axis 0.

    Attributes:
        states: `[K, S]` flat states h.
        speeds: `[K]` q(h) = ½‖F(h, I) − h‖² (half the paper's speed ‖F(h, I) − h‖²).
        converged: `[K]` bool, q < tol_q or ‖∇q‖ < tol_grad at the end (``stop_reason == "converged"``).
        origin: `[K]` int64 index of the initial state each point was optimised from.
        iterations: `[K]` int64 optimisation steps the point took (Adam steps plus polish steps).
        stop_reason: `[K]` int64 code into ``STOP_REASONS``: ``converged``, ``stalled`` (q did not improve
            for ``stall_steps``), ``max_steps`` (the budget ran out while it still moved) or
            ``out_of_bounds`` (it left the states the model can reach).
        jacobians: `[K, S, S]` dF/dh at each point (``J[k, i, j] = dF_i/dh_j``), or None.
        eigenvalues: `[K, S]` complex eigenvalues of each Jacobian, by decreasing magnitude, or None.
        labels: `[K]` int64 class of each point (per-class slow points), or None.
        input: `[D]` the constant input I, or None.
    """

    states: Tensor
    speeds: Tensor
    converged: Tensor
    origin: Tensor
    iterations: Tensor | None = None
    stop_reason: Tensor | None = None
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
        if self.iterations is None:
            self.iterations = torch.zeros(K, dtype=torch.int64)
        if self.stop_reason is None:  # files from before stop reasons: unconverged points ran out of steps
            self.stop_reason = torch.where(self.converged.bool(), CONVERGED, MAX_STEPS).long()
        check_tensor(self.iterations, "iterations", (K,), floating=False)
        check_tensor(self.stop_reason, "stop_reason", (K,), floating=False)
        if self.jacobians is not None:
            check_tensor(self.jacobians, "jacobians", (K, S, S))
        if self.eigenvalues is not None:
            check_tensor(self.eigenvalues, "eigenvalues", (K, S), floating=False)
        if self.labels is not None:
            check_tensor(self.labels, "labels", (K,), floating=False)
        if self.input is not None:
            check_tensor(self.input, "input", ("D",))
        self.origin = self.origin.long()
        self.iterations = self.iterations.long()
        self.stop_reason = self.stop_reason.long()
        self.converged = self.stop_reason == CONVERGED
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

    @property
    def reasons(self) -> list[str]:
        """``stop_reason`` as names."""
        return [STOP_REASONS[int(c)] for c in self.stop_reason]

    @property
    def in_bounds(self) -> Tensor:
        """`[K]` bool: the point stayed within the model's reachable states."""
        return self.stop_reason != OUT_OF_BOUNDS

    def counts(self) -> dict[str, int]:
        """How many points stopped for each reason."""
        return {name: int((self.stop_reason == i).sum()) for i, name in enumerate(STOP_REASONS)}

    def _order(self) -> Tensor:
        """`[K]` indices: in-bounds points first, each group by increasing speed (NaN last)."""
        by_speed = torch.argsort(torch.nan_to_num(self.speeds.double(), nan=float("inf")), stable=True)
        first = torch.argsort((~self.in_bounds[by_speed]).to(torch.int8), stable=True)
        return by_speed[first]

    def unique(self, tol: float = 1e-3) -> SlowPoints:
        """Merge points closer than ``tol`` (Euclidean); each cluster keeps its slowest in-bounds member.

        Greedy: points are visited in-bounds first, by increasing speed, and kept unless within ``tol``
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

    def _spectral_radius(self) -> Tensor:
        if self.eigenvalues is None:
            raise ValueError("eigenvalues: none computed; use compute_jacobians(model) first")
        return self.eigenvalues.abs().amax(-1)

    def is_stable(self, margin: float = STABILITY_MARGIN) -> Tensor:
        """`[K]` bool: every eigenvalue of dF/dh inside the unit circle with room to spare, |λ| < 1 − margin.

        A marginal direction (|λ| within ``margin`` of 1, as along a line attractor) is not stable, in
        float32 and float64 alike; see :meth:`stability`.
        """
        if margin < 0:
            raise ValueError(f"margin: expected a number >= 0, got {margin}")
        return self._spectral_radius() < 1.0 - margin

    def stability(self, margin: float = STABILITY_MARGIN) -> list[str]:
        """A label per point from the largest |λ| of dF/dh (discrete time).

        ``stable``: max |λ| < 1 − margin; ``unstable``: max |λ| > 1 + margin; ``marginal`` otherwise
        (a line or ring attractor, whose |λ| = 1 direction rounds to either side of 1). The default
        ``STABILITY_MARGIN`` = 1e-3 is far above the eigenvalue error of float32 Jacobians of a
        well-conditioned map (about 1e-6) and below the gap of a clearly stable point (|λ| ≈ 0.98).
        """
        rho = self._spectral_radius()
        self.is_stable(margin)  # checks the margin
        return [STABILITY_LABELS[0] if r < 1 - margin else STABILITY_LABELS[2] if r > 1 + margin
                else STABILITY_LABELS[1] for r in rho.tolist()]  # fmt: skip

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
        dtype = self.states.dtype if self.states.dtype == torch.float64 else model_dtype(model)
        m = model if dtype == model_dtype(model) else _in_dtype(model, dtype)
        states = self.states.to(model_device(model), dtype)
        J = jacobians(m, states, input.to(states), t).detach().cpu()  # (K, S, S)
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
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)
        tmp.replace(path)
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


def _in_dtype(model: Model, dtype: torch.dtype) -> Model:
    """A copy of ``model`` in ``dtype`` (eval mode), or the model itself when it already is."""
    if model_dtype(model) == dtype:
        return model
    return copy.deepcopy(model).to(dtype).eval()


def _bounds(model: Model, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor] | None:
    """The model's ``state_bounds()`` as `[S]` tensors, or None when it declares none or all are infinite."""
    get = getattr(model, "state_bounds", None)
    if get is None:
        return None
    low, high = get(device=device, dtype=dtype)
    if bool(torch.isinf(low).all()) and bool(torch.isinf(high).all()):
        return None
    return low, high


def _outside(h: Tensor, bounds: tuple[Tensor, Tensor] | None) -> Tensor:
    """`[K]` bool: some coordinate beyond its bound (or not finite)."""
    bad = ~torch.isfinite(h).all(-1)
    if bounds is None:
        return bad
    low, high = bounds
    return bad | ((h < low) | (h > high)).any(-1)


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
_PLATEAU_THRESHOLD = 1e-4  # relative improvement that resets a point's plateau and stall counters


class _Search(NamedTuple):
    states: Tensor  # (K, S)
    reason: Tensor  # (K,) int64 STOP_REASONS code
    iterations: Tensor  # (K,) int64


def _minimise_speed(
    model: Model,
    x: Tensor,
    h0: Tensor,
    t: int,
    lr: float,
    max_steps: int,
    tol_q: float,
    tol_grad: float,
    lr_factor: float,
    lr_patience: int,
    stall_steps: int,
    bounds: tuple[Tensor, Tensor] | None,
    project: bool,
    pinned_steps: int,
) -> _Search:
    """Batched Adam on q with one plateau schedule per point; every point stops for its own reason.

    Every point has its own learning rate, multiplied by ``lr_factor`` after ``lr_patience`` steps
    without a relative improvement of its best q by ``_PLATEAU_THRESHOLD`` (as ``ReduceLROnPlateau``),
    so a point that has settled does not hold back the step size of one still travelling. A point stops
    when q < ``tol_q`` or ‖∇q‖ < ``tol_grad`` (converged), when its best q has not improved for
    ``stall_steps`` steps (stalled), or when it leaves ``bounds`` (out of bounds). With ``project`` a point
    is clipped back into the bounds after each step instead, and is out of bounds only once it has been
    clipped ``pinned_steps`` steps in a row (it keeps pushing outwards).
    """
    K = h0.shape[0]
    h = h0.clone()
    m = torch.zeros_like(h)  # Adam's first moment
    v = torch.zeros_like(h)  # Adam's second moment
    rate = torch.full((K,), lr, dtype=h.dtype, device=h.device)  # per-point learning rate
    best = torch.full((K,), float("inf"), dtype=h.dtype, device=h.device)
    since = torch.zeros(K, dtype=torch.int64, device=h.device)  # steps since the last improvement
    stale = torch.zeros(K, dtype=torch.int64, device=h.device)  # the same, never reset by a rate cut
    pinned = torch.zeros(K, dtype=torch.int64, device=h.device)  # steps in a row clipped back into bounds
    reason = torch.full((K,), MAX_STEPS, dtype=torch.int64, device=h.device)
    iterations = torch.full((K,), max_steps, dtype=torch.int64, device=h.device)
    live = torch.arange(K, device=h.device)  # points still moving; only they are computed
    for step in range(max_steps):
        hg = h[live].detach().requires_grad_(True)
        q = speed(model, hg, x, t)  # (k,)
        (grad,) = torch.autograd.grad(q.sum(), hg)
        q = q.detach()
        conv = (q < tol_q) | (grad.norm(dim=-1) < tol_grad)
        stalled = ~conv & (stale[live] >= stall_steps)
        outside = ~conv & ~stalled & (_outside(h[live], None if project else bounds) | (pinned[live] >= pinned_steps))
        code = torch.where(conv, CONVERGED, torch.where(stalled, STALLED, OUT_OF_BOUNDS))
        stop = conv | stalled | outside
        reason[live[stop]] = code[stop]
        iterations[live[stop]] = step
        go = ~stop
        live, q, grad = live[go], q[go], grad[go]
        if live.numel() == 0:
            break
        m[live] = _BETA1 * m[live] + (1 - _BETA1) * grad
        v[live] = _BETA2 * v[live] + (1 - _BETA2) * grad * grad
        m_hat = m[live] / (1 - _BETA1 ** (step + 1))
        v_hat = v[live] / (1 - _BETA2 ** (step + 1))
        moved = h[live] - rate[live, None] * m_hat / (v_hat.sqrt() + _EPS)  # (k, S)
        if project and bounds is not None:
            clipped = torch.minimum(torch.maximum(moved, bounds[0]), bounds[1])
            pinned[live] = torch.where((clipped != moved).any(-1), pinned[live] + 1, 0)
            moved = clipped
        h[live] = moved
        improved = q < best[live] * (1 - _PLATEAU_THRESHOLD)
        best[live] = torch.where(improved, q, best[live])
        since[live] = torch.where(improved, 0, since[live] + 1)
        stale[live] = torch.where(improved, 0, stale[live] + 1)
        cut = since[live] > lr_patience
        rate[live] = torch.where(cut, rate[live] * lr_factor, rate[live])
        since[live] = since[live].masked_fill(cut, 0)
    return _Search(h.detach(), reason, iterations)


def polish_fixed_points(
    model: Model,
    input: Tensor,
    states: Tensor,
    *,
    max_steps: int = 50,
    tol_q: float | None = None,
    tol_grad: float | None = None,
    damping: float = 1e-3,
    t: int = 0,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Levenberg–Marquardt on the residual r(h) = F(h, I) − h in float64, batched over points.

    Each step solves ``(AᵀA + μ I) δ = −Aᵀ r`` with A = dF/dh − I (the batched Jacobians of
    :func:`~mnemonet.analysis.dynamics.jacobians`) and keeps the step when q = ½‖r‖² falls, dividing μ by
    10 (Gauss–Newton: quadratic convergence to a fixed point with A invertible), else multiplies μ by 10
    and stays. A point stops when q < ``tol_q`` or ‖Aᵀ r‖ < ``tol_grad`` (float64 defaults of
    :func:`default_tolerances`); the points that never do keep their best state.

    Args:
        model: any model satisfying the contract (copied to float64 when it is not).
        input: the constant input I, `[D]` or `[1, D]`.
        states: `[K, S]` starting states.
        max_steps: LM steps at most.
        tol_q, tol_grad: convergence tolerances; None: float64 defaults.
        damping: μ relative to the largest diagonal entry of AᵀA at the start.
        t: time index passed to ``step``.

    Returns:
        ``(states [K, S] float64, speeds [K] float64, converged [K] bool, steps [K] int64)``.
    """
    check_tensor(states, "states", ("K", model.state_size))
    m64 = _in_dtype(model, torch.float64)
    device = model_device(m64)
    K, S = states.shape
    dq, dg = default_tolerances(torch.float64, S)
    tol_q = dq if tol_q is None else tol_q
    tol_grad = dg if tol_grad is None else tol_grad
    x = broadcast_inputs(m64, input.detach().to(device, torch.float64), K)  # (K, D)
    h = states.detach().to(device, torch.float64).clone()
    eye = torch.eye(S, dtype=torch.float64, device=device)
    with torch.no_grad():
        r = transition(m64, h, x, t) - h  # (K, S)
    q = 0.5 * r.pow(2).sum(-1)
    mu = torch.full((K,), math.nan, dtype=torch.float64, device=device)
    done = torch.zeros(K, dtype=torch.bool, device=device)
    steps = torch.full((K,), max_steps, dtype=torch.int64, device=device)
    for step in range(max_steps + 1):
        live = torch.nonzero(~done).flatten()
        if live.numel() == 0:
            break
        A = jacobians(m64, h[live], x[live], t).detach() - eye  # (k, S, S)
        g = (A.transpose(1, 2) @ r[live, :, None])[..., 0]  # (k, S) ∇q = Aᵀ r
        ok = (q[live] < tol_q) | (g.norm(dim=-1) < tol_grad) | ~torch.isfinite(q[live])
        done[live[ok]] = True
        steps[live[ok]] = step
        if step == max_steps or bool(ok.all()):
            continue
        keep = ~ok
        live, A, g = live[keep], A[keep], g[keep]
        AtA = A.transpose(1, 2) @ A  # (k, S, S)
        if bool(torch.isnan(mu[live]).any()):
            fresh = torch.isnan(mu[live])
            scale = AtA.diagonal(dim1=1, dim2=2).amax(-1).clamp_min(1e-30)
            mu[live[fresh]] = damping * scale[fresh]
        for _ in range(8):  # raise μ until the step lowers q (at most 8 tries per LM step)
            delta = torch.linalg.solve(AtA + mu[live, None, None] * eye, -g[..., None])[..., 0]  # (k, S)
            h_new = h[live] + delta
            with torch.no_grad():
                r_new = transition(m64, h_new, x[live], t) - h_new
            q_new = 0.5 * r_new.pow(2).sum(-1)
            better = q_new < q[live]
            idx = live[better]
            h[idx], r[idx], q[idx] = h_new[better], r_new[better], q_new[better]
            mu[idx] = (mu[idx] / 10).clamp_min(1e-300)
            mu[live[~better]] *= 10
            live = live[~better]
            if live.numel() == 0:
                break
            A_keep = ~better
            AtA, g = AtA[A_keep], g[A_keep]
    with torch.enable_grad():
        hg = h.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(speed(m64, hg, x, t).sum(), hg)
    converged = (q < tol_q) | (grad.norm(dim=-1) < tol_grad)
    return h.cpu(), q.cpu(), converged.cpu(), steps.cpu()


def find_slow_points(
    model: Model,
    input: Tensor,
    initial_states: Tensor,
    *,
    lr: float = 1e-2,
    max_steps: int = 5000,
    tol_q: float | None = None,
    tol_grad: float | None = None,
    stall_steps: int = 500,
    lr_factor: float = 0.5,
    lr_patience: int = 50,
    bounds: str = "project",
    pinned_steps: int = 100,
    polish: bool = True,
    polish_steps: int = 30,
    outlier_scale: float | None = 10.0,
    unique_tol: float | None = 1e-3,
    compute_jacobians: bool = True,
    t: int = 0,
) -> SlowPoints:
    """Minimise q(h) = ½‖F(h, I) − h‖² from K initial states at once, then polish in float64.

    One batched optimisation: Adam on the `[K, S]` states in the model's dtype, each point with its own
    plateau schedule (its learning rate multiplied by ``lr_factor`` when its q has not improved for
    ``lr_patience`` steps, as ``ReduceLROnPlateau`` per point). A point stops (and is frozen) when it
    converges (q < ``tol_q`` or ‖∇q‖ < ``tol_grad``), when q has not improved for ``stall_steps`` steps
    (``stalled``), or when it leaves the model's ``state_bounds()`` (``out_of_bounds``: a GRU's |h| ≤ 1).
    By default (``bounds="project"``) a point is clipped back into the bounds after each step and is out
    of bounds once it has pushed against them for ``pinned_steps`` steps in a row (Adam moves every
    coordinate by about the learning rate, so one step can overshoot a bound the descent does not
    really cross); ``"flag"`` stops a point at its first step outside. The rest run out of ``max_steps``. Then
    every in-bounds point gets a float64 Levenberg–Marquardt polish (:func:`polish_fixed_points`), which
    may converge it; its speed is then q in float64. Outliers are dropped (see :func:`outliers`), points
    closer than ``unique_tol`` merged (see :meth:`SlowPoints.unique`) and the Jacobians dF/dh and their
    eigenvalues computed, batched.

    The model's parameters get no gradient; put the model in eval mode (dropout, batch statistics).

    Args:
        model: any model satisfying the contract.
        input: the constant input I, `[D]` or `[1, D]`, shared by all points (for delayed recall: the
            noise mean with the trigger off).
        initial_states: `[K, S]` flat initial states (e.g. sampled from trajectories with noise).
        lr: Adam's initial learning rate.
        max_steps: Adam step budget.
        tol_q, tol_grad: convergence tolerances of the Adam phase; None: :func:`default_tolerances` of
            the model's dtype (the polish uses the float64 ones).
        stall_steps: steps without a relative improvement of q by 1e-4 after which a point is stalled.
        lr_factor, lr_patience: the plateau schedule.
        bounds: ``"project"`` (clip points back into the model's reachable states each step; out of bounds
            after ``pinned_steps`` clipped steps in a row), ``"flag"`` (out of bounds at the first step
            outside) or ``"ignore"``.
        pinned_steps: see ``bounds``.
        polish: run the float64 polish on in-bounds points.
        polish_steps: LM steps of the polish.
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
    check_positive(stall_steps, "stall_steps")
    check_positive(polish_steps, "polish_steps")
    check_positive(lr_patience, "lr_patience", allow_zero=True)
    if bounds not in ("flag", "project", "ignore"):
        raise ValueError(f"bounds: expected 'flag', 'project' or 'ignore', got {bounds!r}")
    dtype, device = model_dtype(model), model_device(model)
    dq, dg = default_tolerances(dtype, model.state_size)
    tol_q = dq if tol_q is None else tol_q
    tol_grad = dg if tol_grad is None else tol_grad
    if lr <= 0 or not 0 < lr_factor < 1 or tol_q < 0 or tol_grad < 0:
        raise ValueError(
            f"lr, lr_factor, tol_q, tol_grad: expected lr > 0, 0 < lr_factor < 1 and tolerances >= 0, "
            f"got {lr}, {lr_factor}, {tol_q}, {tol_grad}"
        )
    x = broadcast_inputs(model, input.to(device, dtype), 1)  # (1, D)
    h0 = initial_states.detach().to(device, dtype)
    K = h0.shape[0]
    box = None if bounds == "ignore" else _bounds(model, dtype, device)
    if box is not None:
        h0 = torch.minimum(torch.maximum(h0, box[0]), box[1])  # noisy starts back into the reachable states
    found = _minimise_speed(model, x, h0, t, lr, max_steps, tol_q, tol_grad, lr_factor, lr_patience,
                            stall_steps, box, bounds == "project", pinned_steps)  # fmt: skip
    states, reason, iterations = found.states.cpu(), found.reason.cpu(), found.iterations.cpu()
    with torch.no_grad():
        q_final = speed(model, found.states, x, t).cpu()
    if polish:
        states, q_final = states.to(torch.float64), q_final.to(torch.float64)
        live = torch.nonzero(reason != OUT_OF_BOUNDS).flatten()
        if live.numel():
            h, q, ok, used = polish_fixed_points(model, x[0], states[live], max_steps=polish_steps, t=t)
            better = q <= q_final[live]
            states[live[better]], q_final[live[better]] = h[better], q[better]
            iterations[live] += used
            reason[live[ok & better]] = CONVERGED
            if box is not None:
                left = _outside(states[live].to(device, dtype), box).cpu()
                reason[live[left]] = OUT_OF_BOUNDS
    points = SlowPoints(
        states=states,
        speeds=q_final,
        converged=reason == CONVERGED,
        origin=torch.arange(K),
        iterations=iterations,
        stop_reason=reason,
        input=x[0].detach().cpu(),
    )
    if outlier_scale is not None:
        points = points[~outliers(points.states, h0.cpu(), outlier_scale)]
    if unique_tol is not None:
        points = points.unique(unique_tol)
    if compute_jacobians and len(points):
        points = points.compute_jacobians(model, t=t)
    return points


@dataclass
class Attractors:
    """Where the network settles under a constant input, and which start went where.

    Attributes:
        points: the attractors as polished fixed points (:class:`SlowPoints`, with Jacobians), by basin size.
        basin: `[N]` int64 index into ``points`` of the attractor each start ended at, −1 for a start whose
            trajectory had not settled (its end did not polish to an in-bounds fixed point).
        end_speeds: `[N]` q at each trajectory's end (before polishing): how settled it was.
    """

    points: SlowPoints
    basin: Tensor
    end_speeds: Tensor

    def basin_share(self, labels: Tensor, num_classes: int | None = None) -> Tensor:
        """`[A, C]` fraction of each class's starts that ended at each attractor (unsettled starts count in the
        denominator, so a column sums to the class's settled fraction).

        Args:
            labels: `[N]` int64 class of each start.
            num_classes: C; default ``labels.max() + 1``.
        """
        check_tensor(labels, "labels", (self.basin.shape[0],), floating=False)
        labels = labels.long().cpu()
        C = int(labels.max()) + 1 if num_classes is None else num_classes
        counts = torch.zeros(len(self.points) + 1, C, dtype=torch.float64)  # last row: not settled
        counts.index_put_((self.basin, labels), torch.ones(labels.shape[0], dtype=torch.float64), accumulate=True)
        return (counts / counts.sum(0, keepdim=True).clamp_min(1))[:-1]


def find_attractors(
    model: Model,
    input: Tensor,
    states: Tensor,
    steps: int = 500,
    *,
    merge_tol: float = 1e-2,
    polish_steps: int = 30,
    t: int = 0,
) -> Attractors:
    """Run the network forward from ``states`` under the constant input, cluster the ends, polish each.

    Every start runs ``steps`` steps of h ← F(h, I) (batched, no gradient). The end points are merged
    greedily (a cluster is every end within ``merge_tol`` of its first, slowest member), and each
    cluster's slowest end is polished to a fixed point by :func:`polish_fixed_points`; polished points within
    ``merge_tol`` are merged again (slowly settling ends of one attractor). Only clusters whose end polishes
    to an in-bounds fixed point are attractors; a trajectory still on its way elsewhere (a slow drift, a
    cycle, an end that polishes out of bounds) gets basin −1.

    Args:
        model: any model satisfying the contract (eval mode).
        input: the constant input I, `[D]` or `[1, D]`.
        states: `[N, S]` starting states (e.g. the end-of-delay states of test trials).
        steps: forward steps.
        merge_tol: Euclidean distance within which two ends belong to one attractor.
        polish_steps: LM steps of the polish.
        t: time index passed to ``step``.

    Returns:
        :class:`Attractors`, attractors ordered by basin size (largest first).
    """
    check_tensor(states, "states", ("N", model.state_size))
    check_positive(steps, "steps")
    if states.shape[0] == 0:
        raise ValueError(f"states: expected at least one state, got shape (0, {model.state_size})")
    dtype, device = model_dtype(model), model_device(model)
    x = broadcast_inputs(model, input.detach().to(device, dtype), 1)  # (1, D)
    h = states.detach().to(device, dtype)
    with torch.no_grad():
        for _ in range(steps):
            h = transition(model, h, x, t)
        end_q = speed(model, h, x, t).cpu()
    ends = h.cpu().to(torch.float64)
    order = torch.argsort(torch.nan_to_num(end_q.double(), nan=float("inf")), stable=True)
    centres: list[int] = []
    basin = torch.full((ends.shape[0],), -1, dtype=torch.int64)
    for i in order.tolist():
        if centres:
            d = torch.cdist(ends[i][None], ends[centres])[0].detach()
            j = int(d.argmin())
            if float(d[j]) <= merge_tol:
                basin[i] = j
                continue
        centres.append(i)
        basin[i] = len(centres) - 1
    sizes = torch.bincount(basin, minlength=len(centres))
    rank = torch.argsort(sizes, descending=True, stable=True)
    new_index = torch.empty_like(rank)
    new_index[rank] = torch.arange(len(centres))
    basin = new_index[basin]
    reps = ends[torch.as_tensor(centres)[rank]]  # (A, S)
    polished, q, ok, used = polish_fixed_points(model, x[0], reps, max_steps=polish_steps, t=t)
    # ends still on their way (a slow approach, |λ| near 1) polish to one fixed point: merge those too
    merged = torch.arange(len(centres))
    for i in range(1, len(centres)):
        d = (polished[:i] - polished[i]).norm(dim=-1).detach()
        j = int(d.argmin())
        if float(d[j]) <= merge_tol:
            merged[i] = merged[j]
    keep = torch.nonzero(merged == torch.arange(len(centres))).flatten()
    new_index = torch.empty_like(merged)
    new_index[keep] = torch.arange(keep.numel())
    basin = new_index[merged[basin]]
    polished, q, ok, used, rank = polished[keep], q[keep], ok[keep], used[keep], rank[keep]
    sizes = torch.bincount(basin, minlength=keep.numel())
    order = torch.argsort(sizes, descending=True, stable=True)
    again = torch.empty_like(order)
    again[order] = torch.arange(order.numel())
    basin = again[basin]
    polished, q, ok, used, rank = polished[order], q[order], ok[order], used[order], rank[order]
    reason = torch.where(ok, CONVERGED, MAX_STEPS)
    box = _bounds(model, dtype, device)
    if box is not None:
        reason = torch.where(_outside(polished.to(device, dtype), box).cpu(), OUT_OF_BOUNDS, reason)
    real = torch.nonzero(reason == CONVERGED).flatten()  # the rest were still on their way: not attractors
    index = torch.full((len(reason),), -1, dtype=torch.int64)
    index[real] = torch.arange(real.numel())
    basin = index[basin]
    points = SlowPoints(states=polished[real], speeds=q[real], converged=ok[real],
                        origin=torch.as_tensor(centres)[rank][real], iterations=used[real] + steps,
                        stop_reason=reason[real], input=x[0].detach().cpu())  # fmt: skip
    if len(points):
        points = points.compute_jacobians(model, t=t)
    return Attractors(points, basin, end_q)
