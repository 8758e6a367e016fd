"""Curricula that make a task harder in stages once the learner meets a threshold.

Three curricula share one interface (:class:`mnemonet.tasks.base.Curriculum`): the vocabulary
curriculum VoCu of Haviv et al. (2019) starts the delayed-recall task with 2 classes and adds one each
time accuracy passes a threshold; the delay curriculum DeCu grows the window in which the image and
trigger times fall, up to Tmax; the length curriculum grows the bit tasks' length range. Each takes the
task in its constructor, applies its first stage at once, and applies every new stage itself; its
state (stage and the count of evaluations meeting the threshold) goes into checkpoints.

Beside the threshold rule, the authors' code (DoronHaviv/MemoryRNN) changes stages at fixed fractions of
training whatever the accuracy: :class:`DelaySchedule` and :class:`VocabularySchedule` reproduce those
schedules (:class:`ScheduledCurriculum`), moving at :meth:`~mnemonet.tasks.base.Curriculum.at_step`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from mnemonet._checks import check_positive
from mnemonet.tasks.base import Curriculum, Task


class ThresholdCurriculum(Curriculum):
    """Stages ``start, start + step, ...`` up to ``end`` of one task knob, advanced by a metric threshold.

    Subclasses implement ``_apply(value)`` to set the knob on the task.

    Args:
        task: the task to drive.
        start, end: knob values at the first and the last stage (``start <= end``).
        step: increment per stage (the last stage is ``end`` even if ``end - start`` is not a multiple).
        threshold: the stage advances when ``metrics[metric]`` reaches it.
        metric: the metric to watch.
        higher_is_better: direction of ``metric``; None takes the task's own direction for its
            primary metric and "higher" for any other metric.
        patience: evaluations in a row that must meet the threshold before advancing.
    """

    knob = "value"

    def __init__(
        self,
        task: Task,
        start: int,
        end: int,
        step: int = 1,
        threshold: float = 0.9,
        metric: str = "accuracy",
        higher_is_better: bool | None = None,
        patience: int = 1,
    ) -> None:
        check_positive(step, "step")
        check_positive(patience, "patience")
        if not isinstance(start, int) or not isinstance(end, int) or start > end:
            raise ValueError(f"start: expected integers start <= end, got start={start!r}, end={end!r}")
        self.task = task
        self.start = start
        self.end = end
        self.step = step
        self.threshold = float(threshold)
        self.metric = metric
        if higher_is_better is None:
            higher_is_better = task.higher_is_better if metric == task.primary_metric else True
        self.higher_is_better = higher_is_better
        self.patience = patience
        self.num_stages = math.ceil((end - start) / step) + 1
        self.stage = 0
        self.hits = 0
        self._apply(self.value)

    @property
    def value(self) -> int:
        """The knob's value at the current stage."""
        return min(self.start + self.stage * self.step, self.end)

    @property
    def finished(self) -> bool:
        return self.stage == self.num_stages - 1

    def _apply(self, value: int) -> None:
        raise NotImplementedError

    def _met(self, metrics: dict[str, float]) -> bool:
        if self.metric not in metrics:
            raise ValueError(f"metrics: expected a value for {self.metric!r}, got keys {sorted(metrics)}")
        value = metrics[self.metric]
        return value >= self.threshold if self.higher_is_better else value <= self.threshold

    def observe(self, metrics: dict[str, float]) -> bool:
        """Count an evaluation; advance a stage (and apply it) after ``patience`` in a row meet the threshold."""
        if self.finished:
            return False
        self.hits = self.hits + 1 if self._met(metrics) else 0
        if self.hits < self.patience:
            return False
        self.stage += 1
        self.hits = 0
        self._apply(self.value)
        return True

    def describe(self) -> str:
        return f"{self.knob} {self.value}/{self.end}"

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "hits": self.hits, "value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stage = int(state["stage"])
        if not 0 <= stage < self.num_stages:
            raise ValueError(f"state: stage {stage} is outside [0, {self.num_stages - 1}] for this curriculum")
        self.stage = stage
        self.hits = int(state.get("hits", 0))
        self._apply(self.value)


class VocabularyCurriculum(ThresholdCurriculum):
    """VoCu (Haviv et al. 2019): classes in play grow from ``start`` (2) to ``end`` one at a time.

    Drives ``task.num_classes`` (e.g. :class:`~mnemonet.tasks.delayed_recall.DelayedRecallTask`).

    Args:
        task: a task with ``num_classes`` and ``max_classes``.
        start: classes at the first stage.
        end: classes at the last stage; None means ``task.max_classes``.
        step, threshold, metric, higher_is_better, patience: as :class:`ThresholdCurriculum`.

    Example:
        >>> from mnemonet.tasks.delayed_recall import DelayedRecallTask
        >>> task = DelayedRecallTask()
        >>> cur = VocabularyCurriculum(task, threshold=0.9)
        >>> task.num_classes, cur.observe({"accuracy": 0.95}), task.num_classes
        (2, True, 3)
    """

    knob = "classes"

    def __init__(
        self,
        task: Task,
        start: int = 2,
        end: int | None = None,
        step: int = 1,
        threshold: float = 0.9,
        metric: str = "accuracy",
        higher_is_better: bool | None = None,
        patience: int = 1,
    ) -> None:
        if not hasattr(task, "num_classes") or not hasattr(task, "max_classes"):
            raise ValueError(f"task: VocabularyCurriculum needs a task with num_classes, got {type(task).__name__}")
        end = task.max_classes if end is None else end
        if not 1 <= start <= end <= task.max_classes:
            raise ValueError(f"start: expected 1 <= start <= end <= {task.max_classes}, got start={start}, end={end}")
        super().__init__(task, start, end, step, threshold, metric, higher_is_better, patience)

    def _apply(self, value: int) -> None:
        self.task.num_classes = value


class DelayCurriculum(ThresholdCurriculum):
    """DeCu (Haviv et al. 2019): the window holding ts and ta grows from ``start`` to ``end`` = Tmax.

    Drives ``task.window`` of :class:`~mnemonet.tasks.delayed_recall.DelayedRecallTask`; the longest
    possible delay is ``window - 1``. The authors' schedule grows it 6, 8, ..., 20 (``step=2``).

    Args:
        task: a task with ``window``, ``t_max`` and ``min_gap``.
        start: window at the first stage; None means ``min_gap + 1`` (the smallest that fits).
        end: window at the last stage; None means ``task.t_max``.
        step, threshold, metric, higher_is_better, patience: as :class:`ThresholdCurriculum`.
    """

    knob = "window"

    def __init__(
        self,
        task: Task,
        start: int | None = None,
        end: int | None = None,
        step: int = 2,
        threshold: float = 0.9,
        metric: str = "accuracy",
        higher_is_better: bool | None = None,
        patience: int = 1,
    ) -> None:
        if not all(hasattr(task, a) for a in ("window", "t_max", "min_gap")):
            raise ValueError(f"task: DelayCurriculum needs a task with window and t_max, got {type(task).__name__}")
        start = task.min_gap + 1 if start is None else start
        end = task.t_max if end is None else end
        if not task.min_gap + 1 <= start <= end <= task.t_max:
            raise ValueError(
                f"start: expected {task.min_gap + 1} <= start <= end <= {task.t_max} (min_gap + 1 .. t_max), "
                f"got start={start}, end={end}"
            )
        super().__init__(task, start, end, step, threshold, metric, higher_is_better, patience)

    def _apply(self, value: int) -> None:
        self.task.window = value


class LengthCurriculum(ThresholdCurriculum):
    """The bit tasks' longest training length grows from ``start`` to ``end``.

    Drives the upper end of ``task.length_range`` (the lower end stays). By default it watches
    ``sequence_accuracy`` (higher is better).

    Args:
        task: a bit task (``length_range``).
        start: longest length at the first stage; None means the task's shortest length.
        end: longest length at the last stage; None means the task's current longest length.
        step, threshold, metric, higher_is_better, patience: as :class:`ThresholdCurriculum`.
    """

    knob = "length"

    def __init__(
        self,
        task: Task,
        start: int | None = None,
        end: int | None = None,
        step: int = 1,
        threshold: float = 0.9,
        metric: str = "sequence_accuracy",
        higher_is_better: bool | None = None,
        patience: int = 1,
    ) -> None:
        if not hasattr(task, "length_range"):
            raise ValueError(f"task: LengthCurriculum needs a task with length_range, got {type(task).__name__}")
        self._low = task.length_range[0]
        start = self._low if start is None else start
        end = task.length_range[1] if end is None else end
        if not self._low <= start <= end:
            raise ValueError(
                f"start: expected {self._low} <= start <= end (the shortest length first), got start={start}, end={end}"
            )
        super().__init__(task, start, end, step, threshold, metric, higher_is_better, patience)

    def _apply(self, value: int) -> None:
        self.task.length_range = (self._low, value)


class ScheduledCurriculum(Curriculum):
    """Stages at fixed fractions of training: stage i from step ``floor(starts[i] * total_steps)`` on.

    The stage depends only on the step (not on any metric), so a resumed run lands on the same stage.
    Subclasses implement ``_apply(value)``.

    Args:
        task: the task to drive.
        values: the knob's value at each stage.
        starts: the fraction of training at which each stage begins; ``starts[0] == 0``, increasing, < 1.
    """

    knob = "value"

    def __init__(self, task: Task, values: list[int], starts: list[float]) -> None:
        values, starts = [int(v) for v in values], [float(f) for f in starts]
        if not values or len(values) != len(starts):
            raise ValueError(f"starts: expected one fraction per value ({len(values)}), got {len(starts)}")
        if starts[0] != 0.0 or any(b <= a for a, b in itertools.pairwise(starts)) or starts[-1] >= 1:
            raise ValueError(f"starts: expected increasing fractions from 0 and below 1, got {starts}")
        self.task = task
        self.values = values
        self.starts = starts
        self.stage = 0
        self._apply(self.value)

    @property
    def value(self) -> int:
        """The knob's value at the current stage."""
        return self.values[self.stage]

    @property
    def finished(self) -> bool:
        return self.stage == len(self.values) - 1

    def _apply(self, value: int) -> None:
        raise NotImplementedError

    def stage_at(self, step: int, total_steps: int) -> int:
        """The stage in force at training step ``step`` (0-based) of ``total_steps``."""
        return max(i for i, f in enumerate(self.starts) if step >= math.floor(f * total_steps))

    def observe(self, metrics: dict[str, float]) -> bool:
        """Metrics never move a fixed schedule."""
        return False

    def at_step(self, step: int, total_steps: int) -> bool:
        """Move to the stage of ``step``; True when the stage changed."""
        stage = self.stage_at(step, total_steps)
        if stage == self.stage:
            return False
        self.stage = stage
        self._apply(self.value)
        return True

    def describe(self) -> str:
        return f"{self.knob} {self.value}/{self.values[-1]}"

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stage = int(state["stage"])
        if not 0 <= stage < len(self.values):
            raise ValueError(f"state: stage {stage} is outside [0, {len(self.values) - 1}] for this schedule")
        self.stage = stage
        self._apply(self.value)


# The authors' schedules (DoronHaviv/MemoryRNN, MNIST, 140k steps), as fractions of training:
# DeCu: window 6 for the first 1/7, then +2 every 1/14 until Tmax = 20 at 4/7.
DECU_WINDOWS = (6, 8, 10, 12, 14, 16, 18, 20)
DECU_STARTS = tuple(0.0 if i == 0 else (i + 1) / 14 for i in range(8))
# VoCu: 2 digits, then one more at steps 8k, 16k, 26k, 36k, 48k, 62k, 78k, 98k of 140k (10 digits).
VOCU_CLASSES = (2, 3, 4, 5, 6, 7, 8, 9, 10)
VOCU_STARTS = tuple(k / 140 for k in (0, 8, 16, 26, 36, 48, 62, 78, 98))


def _clipped(values: list[int], starts: list[float], low: int, high: int) -> tuple[list[int], list[float]]:
    """A schedule's values clipped to ``[low, high]``, repeats dropped (each keeps its first start)."""
    if len(values) != len(starts):
        raise ValueError(f"starts: expected one fraction per value ({len(values)}), got {len(starts)}")
    kept: list[int] = []
    fractions: list[float] = []
    for v, f in zip(values, starts, strict=True):
        v = min(max(int(v), low), high)
        if not kept or v != kept[-1]:
            kept.append(v)
            fractions.append(f)
    return kept, fractions


class DelaySchedule(ScheduledCurriculum):
    """DeCu on the authors' fixed schedule: window 6, 8, ..., 20 at ``DECU_STARTS`` of training.

    Drives ``task.window`` like :class:`DelayCurriculum`; the windows are clipped to ``[min_gap + 1, t_max]``
    of the task (duplicates dropped, keeping the first start); the default schedule ends at the task's Tmax.

    Args:
        task: a task with ``window``, ``t_max`` and ``min_gap``.
        windows, starts: the schedule; default the authors'.

    Example:
        >>> from mnemonet.tasks.delayed_recall import DelayedRecallTask
        >>> task = DelayedRecallTask()
        >>> cur = DelaySchedule(task)
        >>> task.window, cur.at_step(1000, 7000), task.window, cur.at_step(4000, 7000), task.window
        (6, True, 8, True, 20)
    """

    knob = "window"

    def __init__(self, task: Task, windows: list[int] | None = None, starts: list[float] | None = None) -> None:
        if not all(hasattr(task, a) for a in ("window", "t_max", "min_gap")):
            raise ValueError(f"task: DelaySchedule needs a task with window and t_max, got {type(task).__name__}")
        lo, hi = task.min_gap + 1, task.t_max
        windows = [*DECU_WINDOWS[:-1], hi] if windows is None else list(windows)  # the authors' end at Tmax
        starts = list(DECU_STARTS if starts is None else starts)
        super().__init__(task, *_clipped(windows, starts, lo, hi))

    def _apply(self, value: int) -> None:
        self.task.window = value


class VocabularySchedule(ScheduledCurriculum):
    """VoCu on the authors' fixed schedule: 2, 3, ..., 10 classes at ``VOCU_STARTS`` of training.

    Drives ``task.num_classes`` like :class:`VocabularyCurriculum`; counts above ``task.max_classes`` are
    clipped to it (duplicates dropped, keeping the first start).

    Args:
        task: a task with ``num_classes`` and ``max_classes``.
        classes, starts: the schedule; default the authors'.
    """

    knob = "classes"

    def __init__(self, task: Task, classes: list[int] | None = None, starts: list[float] | None = None) -> None:
        if not hasattr(task, "num_classes") or not hasattr(task, "max_classes"):
            raise ValueError(f"task: VocabularySchedule needs a task with num_classes, got {type(task).__name__}")
        classes = list(VOCU_CLASSES if classes is None else classes)
        starts = list(VOCU_STARTS if starts is None else starts)
        super().__init__(task, *_clipped(classes, starts, 1, task.max_classes))

    def _apply(self, value: int) -> None:
        self.task.num_classes = value
