"""State trajectories: run a model on a batch and keep every step's flattened state, with labels and phases.

A trajectory is what the rest of the analysis works on (PCA, initial states for the slow-point finder,
class centres of mass). For the delayed-recall task of Haviv, Rivkind & Barak (ICML 2019) every step
also gets a phase, computed from the stimulus time ``ts`` and the trigger time ``ta`` of each trial
(passed as tensors, so nothing here knows a task class)::

    t:       0 ... ts-1 | ts        | ts+1 ... ta-1 | ta ... T-1
    phase:   BEFORE     | IMAGE     | DELAY         | AFTER
    input:   noise      | the image | noise         | noise, trigger on at ta
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mnemonet._checks import check_lengths, check_positive, check_tensor
from mnemonet.analysis.dynamics import model_dtype

Model = Any

BEFORE, IMAGE, DELAY, AFTER, PADDING = 0, 1, 2, 3, -1
PHASE_NAMES = ("before", "image", "delay", "after")


def phase_labels(ts: Tensor, ta: Tensor, T: int, image_steps: int = 1, lengths: Tensor | None = None) -> Tensor:
    """The phase of every step of every trial.

    Args:
        ts: `[B]` integer step at which the image is shown (first image step).
        ta: `[B]` integer step at which the trigger is on (the answer is due from there).
        T: number of steps.
        image_steps: how many steps the image lasts (1 in the paper).
        lengths: `[B]` sequence lengths or None; steps past a length get ``PADDING`` (-1).

    Returns:
        `[B, T]` int64 codes ``BEFORE`` (0), ``IMAGE`` (1), ``DELAY`` (2), ``AFTER`` (3), see the module docstring.
    """
    check_positive(T, "T")
    check_positive(image_steps, "image_steps")
    ts = _check_times(ts, "ts")
    ta = _check_times(ta, "ta", ts.shape[0])
    if (ta < ts + image_steps).any():
        raise ValueError(f"ta: expected ta >= ts + image_steps ({image_steps}) in every trial")
    if ts.min() < 0 or ta.max() > T:
        raise ValueError(
            f"ts, ta: expected 0 <= ts and ta <= T ({T}), got min ts {int(ts.min())}, max ta {int(ta.max())}"
        )
    t = torch.arange(T, device=ts.device)[None]  # (1, T)
    s, a = ts[:, None], ta[:, None]  # (B, 1)
    phase = torch.full((ts.shape[0], T), DELAY, dtype=torch.int64, device=ts.device)
    phase[t < s] = BEFORE
    phase[(t >= s) & (t < s + image_steps)] = IMAGE
    phase[t >= a] = AFTER
    lengths = check_lengths(lengths, ts.shape[0], T)
    if lengths is not None:
        phase[t >= lengths.to(ts.device)[:, None]] = PADDING
    return phase


def _check_times(v: object, name: str, batch: int | None = None) -> Tensor:
    if not isinstance(v, Tensor) or v.dim() != 1 or v.is_floating_point() or v.dtype == torch.bool:
        got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
        raise ValueError(f"{name}: expected an integer tensor of shape (B,), got {got}")
    if batch is not None and v.shape[0] != batch:
        raise ValueError(f"{name}: expected shape ({batch},), got {tuple(v.shape)}")
    return v.to(torch.int64)


@dataclass
class Trajectories:
    """The states a model went through on a batch.

    Attributes:
        states: `[B, T, S]` flat state after each step (``states[:, t]`` has seen ``inputs[:, :t+1]``).
        outputs: `[B, T, O]` model outputs (logits).
        inputs: `[B, T, D]` the inputs.
        mask: `[B, T]` bool, true at real (non-padding) steps.
        labels: `[B]` int64 class of each trial, or None.
        phases: `[B, T]` int64 phase codes (see :func:`phase_labels`), or None.
        ts: `[B]` int64 stimulus steps, or None.
        ta: `[B]` int64 trigger steps, or None.
        answer_offset: the output class that answers label c is ``c + answer_offset`` (delayed recall:
            1, output 0 being the null class).
    """

    states: Tensor
    outputs: Tensor
    inputs: Tensor
    mask: Tensor
    labels: Tensor | None = None
    phases: Tensor | None = None
    ts: Tensor | None = None
    ta: Tensor | None = None
    answer_offset: int = 0

    def __len__(self) -> int:
        return self.states.shape[0]

    def select(self, phase: int | None = None) -> Tensor:
        """`[B, T]` bool: real steps, restricted to one phase code if given."""
        if phase is None:
            return self.mask
        if self.phases is None:
            raise ValueError("phase: these trajectories have no phases (pass ts and ta to run_trajectories)")
        return self.mask & (self.phases == phase)

    def flat(self, phase: int | None = None) -> tuple[Tensor, Tensor | None]:
        """The selected states as rows, with the label of the trial each came from.

        Returns:
            `[N, S]` states and `[N]` labels (None without labels).
        """
        sel = self.select(phase)
        states = self.states[sel]  # (N, S)
        labels = None
        if self.labels is not None:
            labels = self.labels[:, None].expand_as(sel)[sel]  # (N,)
        return states, labels

    def _times(self) -> tuple[Tensor, Tensor]:
        if self.ts is None or self.ta is None:
            raise ValueError("ts, ta: these trajectories have no stimulus/trigger times (pass ts and ta)")
        return self.ts, self.ta

    def end_of_delay(self) -> Tensor:
        """`[B, S]` the state at step ta − 1 of each trial: the last state before the trigger."""
        _, ta = self._times()
        return states_at(self.states, ta - 1)

    def predictions(self, at: Tensor | None = None) -> Tensor:
        """`[B]` predicted label: argmax of the outputs at step ``at`` `[B]` (default ``ta``) − ``answer_offset``."""
        if at is None:
            at = self._times()[1]
        return states_at(self.outputs, at).argmax(-1) - self.answer_offset

    def noise_inputs(self) -> Tensor:
        """`[N, D]` the inputs of every pre-image and delay step: noise with the trigger off (delayed recall)."""
        return self.inputs[self.select(BEFORE) | self.select(DELAY)]

    def correct(self, at: Tensor | None = None) -> Tensor:
        """`[B]` bool: the prediction at ``at`` (default ``ta``) equals the trial's label."""
        if self.labels is None:
            raise ValueError("labels: these trajectories have no labels")
        return self.predictions(at) == self.labels


@torch.no_grad()
def run_trajectories(
    model: Model,
    x: Tensor,
    lengths: Tensor | None = None,
    labels: Tensor | None = None,
    ts: Tensor | None = None,
    ta: Tensor | None = None,
    image_steps: int = 1,
    state: Any = None,
    answer_offset: int = 0,
) -> Trajectories:
    """Run ``model`` on a batch and keep every step's flattened state.

    Args:
        model: any model satisfying the contract (``forward(..., return_states=True)``).
        x: `[B, T, D]` batch-first inputs.
        lengths: `[B]` sequence lengths, or None.
        labels: `[B]` class of each trial, or None.
        ts, ta: `[B]` stimulus and trigger steps (delayed recall); both or neither.
        image_steps: steps the image lasts (for the phases).
        state: initial state, or None for the model's.
        answer_offset: output class of label c is ``c + answer_offset`` (delayed recall: 1).

    Returns:
        :class:`Trajectories` on the device of ``x``.
    """
    check_tensor(x, "x", ("B", "T", model.input_size))
    B, T = x.shape[:2]
    x = x.to(model_dtype(model))
    if (ts is None) != (ta is None):
        raise ValueError("ts, ta: expected both (delayed recall phases) or neither")
    if labels is not None:
        labels = _check_times(labels, "labels", B)
    lengths = check_lengths(lengths, B, T)
    if getattr(model, "batch_first", True):
        y, _, states = model(x, state=state, lengths=lengths, return_states=True)
    else:
        y, _, states = model(x.transpose(0, 1), state=state, lengths=lengths, return_states=True)
        y, states = y.transpose(0, 1), states.transpose(0, 1)
    mask = torch.ones(B, T, dtype=torch.bool, device=x.device)
    if lengths is not None:
        mask = torch.arange(T, device=x.device)[None] < lengths.to(x.device)[:, None]  # (B, T)
    phases = None
    if ts is not None:
        phases = phase_labels(ts, ta, T, image_steps, lengths)
        ts, ta = ts.to(torch.int64), ta.to(torch.int64)
    return Trajectories(states, y, x, mask, labels, phases, ts, ta, answer_offset)


def states_at(states: Tensor, index: Tensor) -> Tensor:
    """Pick one step per trial.

    Args:
        states: `[B, T, S]`.
        index: `[B]` integer step of each trial (e.g. ``ta - 1``, the end of the delay).

    Returns:
        `[B, S]` with row b = ``states[b, index[b]]``.
    """
    check_tensor(states, "states", ("B", "T", "S"), floating=False)
    index = _check_times(index, "index", states.shape[0])
    T = states.shape[1]
    if index.numel() and (index.min() < 0 or index.max() >= T):
        raise ValueError(f"index: expected values in [0, {T - 1}], got min {int(index.min())}, max {int(index.max())}")
    return states[torch.arange(states.shape[0], device=states.device), index.to(states.device)]  # (B, S)


def sample_rows(
    rows: Tensor, num: int, noise: float = 0.0, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Draw ``num`` rows (without replacement while possible), optionally adding Gaussian noise.

    Used for initial states of the slow-point finder (rows are states sampled from trajectories) and
    for noise inputs of the speed regulariser (rows are inputs of the pre-image phase).

    Args:
        rows: `[N, S]`.
        num: how many rows to draw.
        noise: standard deviation of isotropic Gaussian noise added to each drawn row.
        generator: a CPU ``torch.Generator`` for reproducibility.

    Returns:
        `[num, S]` rows and `[num]` the indices they were drawn from.
    """
    check_tensor(rows, "rows", ("N", "S"))
    check_positive(num, "num")
    if rows.shape[0] == 0:
        raise ValueError("rows: expected at least one row, got shape (0, S)")
    if noise < 0:
        raise ValueError(f"noise: expected a standard deviation >= 0, got {noise}")
    N = rows.shape[0]
    # without replacement while there are enough rows, with replacement beyond
    idx = torch.randperm(N, generator=generator)[:num] if num <= N else torch.randint(N, (num,), generator=generator)
    out = rows[idx.to(rows.device)]  # (num, S)
    if noise > 0:
        out = out + noise * torch.randn(out.shape, generator=generator, dtype=out.dtype).to(out.device)
    return out, idx
