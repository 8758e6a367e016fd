"""Regularisers that lengthen memory by slowing the dynamics where memories live.

The paper's (Haviv, Rivkind & Barak, ICML 2019, as in the authors' code) adds to the cross-entropy a
speed penalty at one fixed anchor state h̄_k per class, under R noise inputs I_r with the trigger off:

    L = L_xent + λ · Σ_k Σ_r ‖F(h̄_k, I_r) − h̄_k‖²

The anchors are the class slow points or the class centres of mass (mean state after the image over
correctly answered trials), computed once from the trained model and then held fixed while it is
fine-tuned (the authors: 5k steps, λ = 1e-3 on MNIST, against the same fine-tune with λ = 0). Gradients
flow to the model's parameters only. Two options act on the training trajectories instead: a speed
penalty along whole delay trajectories and a pull of delay states towards their class anchor.

Interfaces: ``SpeedRegularizer.__call__(model) -> Tensor`` and, for the trajectory-based ones,
``__call__(model, states [B, T, S], mask [B, T], labels=None) -> Tensor`` with ``states`` the
differentiable states of the training forward pass (``return_states=True``). :class:`TaskRegularizer`
wraps all three as the trainer's extra loss ``(model, batch, logits, states) -> Tensor``, computing
anchors and masks from a task's delayed-recall batches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from mnemonet._checks import check_choice, check_positive, check_tensor
from mnemonet.analysis.dynamics import transition
from mnemonet.analysis.speed import class_slow_points
from mnemonet.analysis.trajectories import DELAY, IMAGE, Trajectories, phase_labels, run_trajectories, sample_rows

Model = Any


def _check_weight(weight: float) -> float:
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight < 0:
        raise ValueError(f"weight: expected a number λ >= 0, got {weight!r}")
    return float(weight)


def class_centres_of_mass(
    states: Tensor,
    labels: Tensor,
    correct: Tensor,
    num_classes: int | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """The mean state of each class over correctly answered trials (the paper's centre-of-mass anchors).

    Args:
        states: `[N, S]` one state per trial (e.g. after the image), or `[N, T, S]` trajectories
            averaged over the steps selected by ``mask``.
        labels: `[N]` int64 class of each trial.
        correct: `[N]` bool, the trial was answered correctly.
        num_classes: C (default: ``labels.max() + 1``).
        mask: `[N, T]` bool steps to average over when ``states`` is `[N, T, S]` (e.g. image and delay).

    Returns:
        `[C, S]` centres h̄_c (detached).

    Raises:
        ValueError: a class in ``[0, C)`` has no correctly answered trial.
    """
    if not isinstance(states, Tensor) or states.dim() not in (2, 3):
        got = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
        raise ValueError(f"states: expected shape (N, S) or (N, T, S), got {got}")
    N = states.shape[0]
    check_tensor(labels, "labels", (N,), floating=False)
    check_tensor(correct, "correct", (N,), floating=False)
    states = states.detach()
    labels = labels.long().to(states.device)
    C = int(labels.max()) + 1 if num_classes is None else num_classes
    check_positive(C, "num_classes")
    if labels.numel() and (labels.min() < 0 or labels.max() >= C):
        raise ValueError(f"labels: expected classes in [0, {C - 1}]")
    if states.dim() == 3:
        w = torch.ones(states.shape[:2], dtype=states.dtype, device=states.device)
        if mask is not None:
            check_tensor(mask, "mask", tuple(states.shape[:2]), floating=False)
            w = mask.to(states.dtype)
        w = w * correct.to(states.device, states.dtype)[:, None]  # (N, T)
        sums = torch.zeros(C, states.shape[-1], dtype=states.dtype, device=states.device)
        sums.index_add_(0, labels, (states * w[..., None]).sum(1))  # (C, S)
        counts = torch.zeros(C, dtype=states.dtype, device=states.device).index_add_(0, labels, w.sum(1))
    else:
        w = correct.to(states.device, states.dtype)  # (N,)
        sums = torch.zeros(C, states.shape[-1], dtype=states.dtype, device=states.device)
        sums.index_add_(0, labels, states * w[:, None])  # (C, S)
        counts = torch.zeros(C, dtype=states.dtype, device=states.device).index_add_(0, labels, w)
    empty = torch.nonzero(counts == 0).flatten().tolist()
    if empty:
        raise ValueError(f"correct: classes {empty} have no correctly answered trial to average")
    return sums / counts[:, None]


class SpeedRegularizer:
    """λ Σ_k Σ_r ‖F(h̄_k, I_r) − h̄_k‖² at fixed anchors h̄_k under inputs I_r.

    Args:
        model: the model to regularise (gives sizes; ``__call__`` may be given another handle to it).
        anchors: `[K, S]` anchor states, copied and held fixed (no gradient).
        inputs: `[R, D]` noise inputs with the trigger off, or a callable returning a fresh `[R, D]`
            tensor at each call.
        weight: λ >= 0.

    Example:
        >>> import mnemonet
        >>> model = mnemonet.build("gru", input_size=3, hidden_size=4)
        >>> reg = SpeedRegularizer(model, torch.zeros(2, 4), torch.randn(5, 3), weight=1e-3)
        >>> penalty = reg(model)  # add to the task loss; gradients reach the model's parameters
        >>> penalty.shape, penalty.requires_grad
        (torch.Size([]), True)
    """

    def __init__(
        self, model: Model, anchors: Tensor, inputs: Tensor | Callable[[], Tensor], weight: float = 1e-3
    ) -> None:
        check_tensor(anchors, "anchors", ("K", model.state_size))
        if isinstance(inputs, Tensor):
            check_tensor(inputs, "inputs", ("R", model.input_size))
            inputs = inputs.detach().clone()
        elif not callable(inputs):
            raise ValueError(f"inputs: expected a tensor (R, {model.input_size}) or a callable, got {inputs!r}")
        self.model = model
        self.anchors = anchors.detach().clone()
        self.inputs = inputs
        self.weight = _check_weight(weight)

    def to(self, device: torch.device | str) -> SpeedRegularizer:
        """Move the anchors (and fixed inputs) to ``device``; returns self."""
        self.anchors = self.anchors.to(device)
        if isinstance(self.inputs, Tensor):
            self.inputs = self.inputs.to(device)
        return self

    def __call__(self, model: Model | None = None) -> Tensor:
        """The scalar penalty (differentiable with respect to the model's parameters)."""
        model = self.model if model is None else model
        inputs = self.inputs if isinstance(self.inputs, Tensor) else self.inputs()
        check_tensor(inputs, "inputs", ("R", model.input_size))
        K, R = self.anchors.shape[0], inputs.shape[0]
        h = self.anchors.repeat_interleave(R, dim=0)  # (K*R, S): anchor k repeated for each input
        x = inputs.to(h).repeat(K, 1)  # (K*R, D): inputs cycled for each anchor
        return self.weight * (transition(model, h, x) - h).pow(2).sum()


def _check_trajectory(states: Tensor, mask: Tensor) -> None:
    check_tensor(states, "states", ("B", "T", "S"))
    check_tensor(mask, "mask", tuple(states.shape[:2]), floating=False)


class TrajectorySpeedPenalty:
    """λ · mean over delay transitions of ‖h_{t+1} − h_t‖² = ‖F(h_t, I_{t+1}) − h_t‖² (option).

    Along a trajectory the speed under the actual inputs is the step between consecutive states, so
    no extra model call is needed. A transition t → t+1 counts when both steps are in ``mask``.

    Args:
        weight: λ >= 0.
    """

    def __init__(self, weight: float = 1e-3) -> None:
        self.weight = _check_weight(weight)

    def __call__(self, model: Model, states: Tensor, mask: Tensor, labels: Tensor | None = None) -> Tensor:
        """Penalty from `[B, T, S]` differentiable states and `[B, T]` bool mask (e.g. delay steps)."""
        _check_trajectory(states, mask)
        pair = (mask[:, 1:] & mask[:, :-1]).to(states.dtype)  # (B, T-1)
        step = (states[:, 1:] - states[:, :-1]).pow(2).sum(-1)  # (B, T-1)
        return self.weight * (step * pair).sum() / pair.sum().clamp_min(1)


class AnchorPull:
    """λ · mean over masked steps of ‖h_t − h̄_{c}‖², pulling delay states towards their class anchor (option).

    Args:
        anchors: `[C, S]` fixed anchors (class centres of mass or slow points).
        weight: λ >= 0.

    With ``labels`` the anchor of a trial is its class's; without, the anchor nearest to each state.
    """

    def __init__(self, anchors: Tensor, weight: float = 1e-3) -> None:
        check_tensor(anchors, "anchors", ("C", "S"))
        self.anchors = anchors.detach().clone()
        self.weight = _check_weight(weight)

    def to(self, device: torch.device | str) -> AnchorPull:
        """Move the anchors to ``device``; returns self."""
        self.anchors = self.anchors.to(device)
        return self

    def __call__(self, model: Model, states: Tensor, mask: Tensor, labels: Tensor | None = None) -> Tensor:
        """Penalty from `[B, T, S]` states, `[B, T]` bool mask and optional `[B]` labels."""
        _check_trajectory(states, mask)
        C, S = self.anchors.shape
        if states.shape[-1] != S:
            raise ValueError(f"states: expected state size S = {S} (the anchors'), got {states.shape[-1]}")
        anchors = self.anchors.to(states)
        if labels is not None:
            check_tensor(labels, "labels", (states.shape[0],), floating=False)
            if labels.numel() and (labels.min() < 0 or labels.max() >= C):
                raise ValueError(f"labels: expected classes in [0, {C - 1}] (one anchor each)")
            dist = (states - anchors[labels.long()][:, None]).pow(2).sum(-1)  # (B, T)
        else:
            diff = states[:, :, None] - anchors[None, None]  # (B, T, C, S)
            dist = diff.pow(2).sum(-1).amin(-1)  # (B, T)
        m = mask.to(states.dtype)
        return self.weight * (dist * m).sum() / m.sum().clamp_min(1)


def speed_regularizer_from_trajectories(
    model: Model,
    traj: Trajectories,
    *,
    anchors: str = "centres",
    num_inputs: int = 16,
    weight: float = 1e-3,
    fresh_inputs: bool = False,
    num_classes: int | None = None,
    correct_only: bool = True,
    generator: torch.Generator | None = None,
    **finder_kwargs: Any,
) -> SpeedRegularizer:
    """Build the paper's regulariser from delayed-recall trajectories of the trained model.

    Anchors: ``"centres"``, the class centres of mass of the states after the image (steps ts ≤ t < ta,
    the image and delay phases) over correctly answered trials; or ``"slow_points"``, the per-class
    slow points grown from the end-of-delay states (:func:`class_slow_points`) under the mean noise
    input. Noise inputs I_r: ``num_inputs`` inputs drawn from the pre-image and delay steps (noise,
    trigger off), fixed, or redrawn at each call with ``fresh_inputs``.

    Args:
        model: the trained model.
        traj: trajectories with labels and phases (:func:`run_trajectories` with ``ts``, ``ta``).
        anchors: ``"centres"`` or ``"slow_points"``.
        num_inputs: R.
        weight: λ.
        fresh_inputs: redraw the R inputs at each call.
        num_classes: C for the centres (default: largest label + 1).
        correct_only: centres over correctly answered trials only (the paper); False uses every trial.
        generator: CPU generator for the draws.
        **finder_kwargs: passed to :func:`class_slow_points`.
    """
    check_choice(anchors, "anchors", ("centres", "slow_points"))
    check_positive(num_inputs, "num_inputs")
    if traj.labels is None or traj.phases is None:
        raise ValueError("traj: expected trajectories with labels and phases (run_trajectories with ts, ta)")
    pool = traj.noise_inputs()  # (N, D) noise inputs, trigger off
    if pool.shape[0] == 0:
        raise ValueError("traj: no pre-image or delay step to draw noise inputs from")
    if anchors == "centres":
        after_image = traj.select(IMAGE) | traj.select(DELAY)  # (B, T)
        correct = traj.correct() if correct_only else torch.ones_like(traj.labels, dtype=torch.bool)
        h_bar = class_centres_of_mass(traj.states, traj.labels, correct, num_classes, mask=after_image)
    else:
        points = class_slow_points(
            model, pool.mean(0), traj.end_of_delay(), traj.labels, generator=generator,
            compute_jacobians=False, **finder_kwargs,
        )  # fmt: skip
        h_bar = points.states.to(traj.states.dtype)  # polished points are float64
    if fresh_inputs:
        pool_cpu = pool.detach().cpu()

        def draw() -> Tensor:
            return sample_rows(pool_cpu, num_inputs, generator=generator)[0].to(pool.device)

        return SpeedRegularizer(model, h_bar.to(pool.device), draw, weight)
    fixed = sample_rows(pool.detach().cpu(), num_inputs, generator=generator)[0].to(pool.device)
    return SpeedRegularizer(model, h_bar.to(pool.device), fixed, weight)


def memory_mask(info: dict[str, Tensor], T: int) -> Tensor:
    """`[B, T]` bool: the steps that hold a memory, ts ≤ t < ta (image and delay phases), from a batch's info."""
    if "ts" not in info or "ta" not in info:
        raise ValueError("batch: expected info with 'ts' and 'ta' (a delayed-recall batch)")
    phases = phase_labels(info["ts"], info["ta"], T)
    return (phases == IMAGE) | (phases == DELAY)


def answer_offset(batch: Any) -> int:
    """The constant c such that the target at ``ta`` is ``label + c`` (delayed recall: 1, the null class being 0)."""
    info = batch.info
    if "labels" not in info or "ta" not in info or batch.target.dim() != 2:
        raise ValueError("batch: expected a classification batch with info 'labels' and 'ta'")
    rows = torch.arange(batch.target.shape[0], device=batch.target.device)
    diff = batch.target[rows, info["ta"].to(batch.target.device)] - info["labels"].to(batch.target.device)
    if diff.numel() == 0 or bool((diff != diff[0]).any()):
        raise ValueError("batch: the target at ta is not the label plus one constant offset")
    return int(diff[0])


class TaskRegularizer:
    """The regularisers as one trainer extra loss: ``(model, batch, logits, states) -> scalar``.

    Built as ``TaskRegularizer(model=model, task=task, **kwargs)`` (the signature of a regulariser
    factory of the training layer, which may register this class by name). ``kind`` picks the term:

    - ``"speed"``: the paper's λ Σ_k Σ_r ‖F(h̄_k, I_r) − h̄_k‖² (:class:`SpeedRegularizer`);
    - ``"trajectory_speed"``: :class:`TrajectorySpeedPenalty` over the image and delay steps;
    - ``"anchor_pull"``: :class:`AnchorPull` of the image and delay states towards their class anchor.

    Anchors (``"centres"`` or ``"slow_points"``) and noise inputs come from ``num_trials`` trials of the
    task drawn with ``seed``, run through the model at the first call, and are then held fixed: when
    fine-tuning, that is the trained model as the fine-tune starts (a resumed fine-tune recomputes them
    from the model it resumes). With ``weight = 0`` the term is exactly zero (the λ = 0 control).

    Args:
        model: the model being trained (satisfying the model contract).
        task: a task whose batches carry ``info`` ``labels``, ``ts``, ``ta`` (delayed recall).
        kind: ``"speed"``, ``"trajectory_speed"`` or ``"anchor_pull"``.
        weight: λ.
        anchors: ``"centres"`` or ``"slow_points"``.
        num_trials: trials used to compute the anchors.
        num_inputs: R, noise inputs for ``"speed"``.
        fresh_inputs: redraw the R inputs at every call.
        correct_only: centres over correctly answered trials only (the paper); False uses every trial.
        seed: seed of the anchor trials and of the input draws.
        **finder_kwargs: passed to the slow-point finder (``anchors="slow_points"``).
    """

    def __init__(
        self,
        model: Model,
        task: Any,
        kind: str = "speed",
        weight: float = 1e-3,
        anchors: str = "centres",
        num_trials: int = 512,
        num_inputs: int = 16,
        fresh_inputs: bool = False,
        correct_only: bool = True,
        seed: int = 0,
        **finder_kwargs: Any,
    ) -> None:
        check_choice(kind, "kind", ("speed", "trajectory_speed", "anchor_pull"))
        check_choice(anchors, "anchors", ("centres", "slow_points"))
        check_positive(num_trials, "num_trials")
        check_positive(num_inputs, "num_inputs")
        self.model, self.task, self.kind, self.anchors = model, task, kind, anchors
        self.weight = _check_weight(weight)
        self.num_trials, self.num_inputs, self.fresh_inputs, self.seed = num_trials, num_inputs, fresh_inputs, seed
        self.correct_only = correct_only
        self.finder_kwargs = finder_kwargs
        self.needs_states = kind != "speed"
        self._term: SpeedRegularizer | AnchorPull | TrajectorySpeedPenalty | None = None
        if kind == "trajectory_speed":
            self._term = TrajectorySpeedPenalty(self.weight)

    def _build(self, model: Model) -> SpeedRegularizer | AnchorPull:
        g = torch.Generator().manual_seed(self.seed)
        batch = self.task.sample(self.num_trials, g, "train")
        device = next(iter(model.parameters())).device
        info = {k: v.to(device) for k, v in batch.info.items()}
        was_training = model.training
        model.eval()
        try:
            traj = run_trajectories(
                model, batch.x.to(device), lengths=batch.lengths, labels=info["labels"], ts=info["ts"],
                ta=info["ta"], answer_offset=answer_offset(batch),
            )  # fmt: skip
            reg = speed_regularizer_from_trajectories(
                model, traj, anchors=self.anchors, num_inputs=self.num_inputs, weight=self.weight,
                fresh_inputs=self.fresh_inputs, correct_only=self.correct_only, generator=g, **self.finder_kwargs,
            )  # fmt: skip
        finally:
            model.train(was_training)
        if self.kind == "speed":
            return reg
        return AnchorPull(reg.anchors, self.weight)

    def prepare(self, model: Model) -> None:
        """Compute the anchors and noise inputs now from ``model`` (else at the first call).

        Raises:
            ValueError: the model cannot give anchors (e.g. a class with no correctly answered trial).
        """
        if self._term is None and self.weight != 0.0:
            self._term = self._build(model)

    def __call__(
        self, model: Model, batch: Any = None, logits: Tensor | None = None, states: Tensor | None = None
    ) -> Tensor:
        """The scalar term for one training step (``states`` `[B, T, S]` needed unless ``kind="speed"``)."""
        if self.weight == 0.0:
            return next(iter(model.parameters())).sum() * 0.0
        if self._term is None:
            self._term = self._build(model)
        if isinstance(self._term, SpeedRegularizer):
            return self._term(model)
        if states is None or batch is None:
            raise ValueError(f"states: kind={self.kind!r} needs the batch and its [B, T, S] state trajectory")
        mask = memory_mask(batch.info, states.shape[1]).to(states.device)
        labels = batch.info.get("labels")
        return self._term(model, states, mask, None if labels is None else labels.to(states.device))
