"""Extra loss terms by name: the hook through which analysis regularisers join training.

A regulariser factory is registered with ``@register_regularizer("name")`` and called as
``factory(model=model, task=task, **kwargs)`` with the ``regularizer:`` section's keywords. It returns
an :class:`ExtraLoss`: a callable ``(model, batch, logits, states) -> scalar tensor`` added to the
task loss at every training step. ``states`` is the `[B, T, S]` flattened state trajectory when the
callable has an attribute ``needs_states = True`` (the trainer then runs the model with
``return_states=True``), else None.

Registered here: ``memory_speed``, the memory regularisers of Haviv, Rivkind & Barak (ICML 2019)
(:class:`mnemonet.analysis.regularizers.TaskRegularizer`), e.g.
``regularizer: {name: memory_speed, kind: speed, weight: 1.0e-3, anchors: centres}``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from mnemonet._checks import did_you_mean
from mnemonet.tasks.base import Batch, Task


class ExtraLoss(Protocol):
    """``(model, batch, logits [B, T, C], states [B, T, S] or None) -> scalar`` added to the loss."""

    def __call__(self, model: nn.Module, batch: Batch, logits: Tensor, states: Tensor | None) -> Tensor: ...


_REGISTRY: dict[str, Callable[..., ExtraLoss]] = {}


def register_regularizer(name: str) -> Callable[[Callable[..., ExtraLoss]], Callable[..., ExtraLoss]]:
    """Decorator: make ``factory`` usable as ``regularizer: {name: NAME, ...}`` in a config."""

    def deco(factory: Callable[..., ExtraLoss]) -> Callable[..., ExtraLoss]:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"name: regularizer {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def available_regularizers() -> list[str]:
    """Names accepted in ``regularizer.name``."""
    return sorted(_REGISTRY)


def make_regularizer(name: str | None, model: nn.Module, task: Task, **kwargs: Any) -> ExtraLoss | None:
    """The extra loss named ``name`` (None for no regulariser).

    Raises:
        ValueError: unknown name, with the closest registered one.
    """
    if name is None:
        return None
    if name not in _REGISTRY:
        hint = did_you_mean(name, _REGISTRY)
        known = ", ".join(available_regularizers()) or "none registered"
        raise ValueError(f"regularizer.name: unknown regularizer {name!r}{hint} (available: {known})")
    return _REGISTRY[name](model=model, task=task, **kwargs)


_FLOAT_KEYS = ("weight", "noise", "lr", "tol_q", "tol_dq", "lr_factor", "outlier_scale")


@register_regularizer("memory_speed")
def memory_speed(model: nn.Module, task: Task, **kwargs: Any) -> ExtraLoss:
    """The memory regularisers of Haviv et al. (2019) as a training extra loss (a delayed-recall task).

    ``kind: speed`` (default) is the paper's λ Σ_k Σ_r ‖F(h̄_k, I_r) − h̄_k‖² at class anchors h̄_k under
    noise inputs I_r; ``kind: trajectory_speed`` penalises the step size of the image and delay states;
    ``kind: anchor_pull`` pulls them towards their class anchor. Keywords are those of
    :class:`mnemonet.analysis.regularizers.TaskRegularizer` (``weight``, ``anchors``: ``centres`` or
    ``slow_points``, ``num_trials``, ``num_inputs``, ``fresh_inputs``, ``correct_only``, ``seed``) plus,
    for ``anchors: slow_points``, the slow-point finder's (``per_class``, ``noise``, ``max_steps``, ``lr``, ...).

    Anchors and noise inputs are computed once, at the first training step, from the model as it is
    then: a fine-tune (``trainer.init_from``) anchors them on the trained model it starts from. A resumed
    run recomputes them from the model at the step it resumes from (they are not stored in checkpoints),
    so a resumed regularised run follows an uninterrupted one closely but not bit for bit.

    Raises:
        ValueError: an unknown keyword (with the closest valid one) or a bad value.
    """
    from mnemonet.analysis.regularizers import TaskRegularizer
    from mnemonet.analysis.slow_points import find_slow_points

    own = [p for p in inspect.signature(TaskRegularizer).parameters if p not in ("model", "task", "finder_kwargs")]
    skip = ("model", "input", "initial_states", "unique_tol", "compute_jacobians")
    finder = ["per_class", "noise"] + [p for p in inspect.signature(find_slow_points).parameters if p not in skip]
    valid = own + finder
    for key in kwargs:
        if key not in valid:
            hint = did_you_mean(key, valid)
            raise ValueError(f"regularizer.{key}: unknown key for memory_speed{hint} (valid keys: {', '.join(valid)})")
    for key, value in kwargs.items():  # YAML 1.1 reads "1e-3" (no dot) as a string
        if isinstance(value, str) and key in _FLOAT_KEYS:
            try:
                kwargs[key] = float(value)
            except ValueError:
                raise ValueError(f"regularizer.{key}: expected a number, got {value!r}") from None
    probe = None if task.stateful else task.sample(2, torch.Generator().manual_seed(0), "valid")
    if probe is None or not {"labels", "ts", "ta"} <= set(probe.info):
        raise ValueError(
            f"regularizer.name: memory_speed needs a task whose batches carry labels, ts and ta (delayed recall), "
            f"got task {task.name!r}"
        )
    return TaskRegularizer(model=model, task=task, **kwargs)


__all__ = ["ExtraLoss", "available_regularizers", "make_regularizer", "memory_speed", "register_regularizer"]
