"""Build any task or curriculum by name: ``make_task("copy", bits=8)``, ``make_curriculum("vocu", task)``.

The same names appear in YAML presets and on the command line. Unknown names and keywords raise a
ValueError with the closest valid spelling.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mnemonet._checks import did_you_mean
from mnemonet.tasks.babi import BabiTask
from mnemonet.tasks.base import Curriculum, Task
from mnemonet.tasks.bits import AssociativeRecallTask, CopyTask, RepeatCopyTask
from mnemonet.tasks.char_lm import CharLMTask
from mnemonet.tasks.copy_delay import CopyDelayTask
from mnemonet.tasks.curricula import (
    DelayCurriculum,
    DelaySchedule,
    LengthCurriculum,
    VocabularyCurriculum,
    VocabularySchedule,
)
from mnemonet.tasks.delayed_recall import DelayedRecallTask
from mnemonet.tasks.digits import SequentialDigitsTask
from mnemonet.tasks.graphs import GraphCurriculum, GraphTask
from mnemonet.tasks.moving_digits import MovingDigitsTask

TASKS: dict[str, type[Task]] = {
    "delayed_recall": DelayedRecallTask,
    "copy": CopyTask,
    "repeat_copy": RepeatCopyTask,
    "associative_recall": AssociativeRecallTask,
    "seq_digits": SequentialDigitsTask,
    "char_lm": CharLMTask,
    "copy_delay": CopyDelayTask,
    "moving_digits": MovingDigitsTask,
    "graph": GraphTask,
    "babi": BabiTask,
}

CURRICULA: dict[str, type[Curriculum]] = {
    "vocabulary": VocabularyCurriculum,
    "vocu": VocabularyCurriculum,
    "delay": DelayCurriculum,
    "decu": DelayCurriculum,
    "decu_schedule": DelaySchedule,
    "vocu_schedule": VocabularySchedule,
    "length": LengthCurriculum,
    "graph": GraphCurriculum,
}


def available_tasks() -> list[str]:
    """Names accepted by :func:`make_task`."""
    return sorted(TASKS)


def available_curricula() -> list[str]:
    """Names accepted by :func:`make_curriculum`."""
    return sorted(CURRICULA)


def _lookup(kind: str, name: str, table: dict[str, Any]) -> Any:
    if name not in table:
        hint = did_you_mean(name, table)
        raise ValueError(f"name: unknown {kind} {name!r}{hint} (available: {', '.join(sorted(table))})")
    return table[name]


def _check_kwargs(kind: str, name: str, factory: Callable[..., Any], kwargs: dict[str, Any], skip: int) -> None:
    params = [p for i, p in enumerate(inspect.signature(factory).parameters) if i >= skip]
    for key in kwargs:
        if key not in params:
            hint = did_you_mean(key, params)
            raise ValueError(f"{key}: not an argument of {kind} {name!r}{hint} (expected one of {params})")


def make_task(name: str, **kwargs: Any) -> Task:
    """Build a task by name.

    Args:
        name: one of :func:`available_tasks`: ``"delayed_recall"``, ``"copy"``, ``"repeat_copy"``,
            ``"associative_recall"``, ``"seq_digits"``, ``"char_lm"``, ``"moving_digits"``, ``"graph"``, ``"babi"``.
        **kwargs: the task class's keyword arguments.

    Raises:
        ValueError: unknown name or keyword, with the closest valid spelling.

    Example:
        >>> make_task("copy", bits=4).input_size
        5
    """
    cls = _lookup("task", name, TASKS)
    _check_kwargs("task", name, cls.__init__, kwargs, skip=1)  # skip self
    return cls(**kwargs)


def make_curriculum(name: str, task: Task, **kwargs: Any) -> Curriculum:
    """Build a curriculum by name (``"vocabulary"``/``"vocu"``, ``"delay"``/``"decu"``, ``"length"``,
    ``"graph"``) on ``task``."""
    cls = _lookup("curriculum", name, CURRICULA)
    _check_kwargs("curriculum", name, cls.__init__, kwargs, skip=2)  # skip self, task
    return cls(task, **kwargs)
