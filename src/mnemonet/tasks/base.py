"""What every task gives the trainer: seeded batches, a loss, and metrics; curricula change a task's difficulty.

A task draws batches from a ``torch.Generator`` the caller owns, so runs reproduce and resume exactly.
The trainer knows nothing of a task but this interface.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor


class Batch(NamedTuple):
    """One batch of a task.

    Attributes:
        x: `[B, T, input_size]` float inputs.
        target: `[B, T]` int64 class per step (classification), `[B, T, output_size]` float bits, or
            `[B, T, K]` int64 label ids of K parts per step (graph tasks; -1 = not scored).
        weight: `[B, T]` float loss weight of each step (0 = not scored).
        lengths: `[B]` int64 sequence lengths, or None when every sequence has length T.
        info: task-specific extras, each `[B, ...]` (e.g. ``labels``, ``ts``, ``ta`` for delayed recall).
    """

    x: Tensor
    target: Tensor
    weight: Tensor
    lengths: Tensor | None = None
    info: dict[str, Tensor] = {}  # noqa: RUF012 - NamedTuple default, never mutated

    def to(self, device: torch.device | str) -> Batch:
        """The batch on ``device``."""
        return Batch(
            self.x.to(device),
            self.target.to(device),
            self.weight.to(device),
            None if self.lengths is None else self.lengths,
            {k: v.to(device) for k, v in self.info.items()},
        )


def pad_sequences(parts: list[tuple[Tensor, Tensor, Tensor]], target_fill: float = 0) -> Batch:
    """Stack ``(x [T_i, D], target [T_i, ...], weight [T_i])`` sequences into a batch padded at the end.

    Padding steps get zero input and weight and ``target_fill`` as target (-1 for class ids that a loss
    ignores); the target keeps the parts' dtype.

    Returns:
        Batch with x `[B, T, D]`, target `[B, T, ...]`, weight `[B, T]`, T = max T_i, and lengths `[B]`
        (None when every T_i is equal).
    """
    lengths = torch.tensor([x.shape[0] for x, _, _ in parts], dtype=torch.int64)
    B, T = len(parts), int(lengths.max())
    first_x, first_y = parts[0][0], parts[0][1]
    x = first_x.new_zeros(B, T, first_x.shape[1])
    target = first_y.new_full((B, T, *first_y.shape[1:]), target_fill)
    weight = torch.zeros(B, T)
    for b, (xb, yb, wb) in enumerate(parts):
        n = xb.shape[0]
        x[b, :n], target[b, :n], weight[b, :n] = xb, yb, wb
    return Batch(x, target, weight, None if bool((lengths == T).all()) else lengths)


class Task:
    """Base class of tasks.

    Subclasses set ``input_size``, ``output_size`` and ``kind``, and implement ``sample``, ``loss`` and
    ``metrics``. ``primary_metric`` names the metric used for early stopping and curricula;
    ``higher_is_better`` says which way it improves. Tasks with ``stateful = True`` (language
    modelling) hand out consecutive chunks of one stream: the trainer carries the model state across
    batches (truncated BPTT) and saves ``state_dict()`` in checkpoints.
    """

    name: str = "task"
    input_size: int
    output_size: int
    kind: Literal["classification", "bits"] = "classification"
    primary_metric: str = "accuracy"
    higher_is_better: bool = True
    stateful: bool = False

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        """Draw a batch. ``split`` is ``"train"``, ``"valid"`` or ``"test"``."""
        raise NotImplementedError

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """Scalar training loss from `[B, T, output_size]` logits."""
        raise NotImplementedError

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """Batch-mean metrics (floats) from `[B, T, output_size]` logits; includes ``primary_metric``."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Whatever the task needs to resume exactly (stream positions, curriculum knobs)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


class Curriculum:
    """Changes a task's difficulty in stages as the learner meets a threshold.

    ``observe(metrics)`` is called after each evaluation with the task's metrics and returns True
    when the curriculum advanced a stage (it has then already applied the new stage to the task).
    """

    stage: int = 0

    def observe(self, metrics: dict[str, float]) -> bool:
        raise NotImplementedError

    def at_step(self, step: int, total_steps: int) -> bool:
        """Called before training step ``step`` (0-based) of ``total_steps``; True when it changed the stage.

        Threshold curricula ignore it; fixed step schedules (:mod:`mnemonet.tasks.curricula`) move here.
        """
        return False

    @property
    def finished(self) -> bool:
        """True at the last stage."""
        raise NotImplementedError

    def describe(self) -> str:
        """Short text for the progress bar, e.g. ``"classes 4/10"``."""
        return f"stage {self.stage}"

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError
