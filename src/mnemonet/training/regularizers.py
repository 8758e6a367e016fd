"""Extra loss terms by name: the hook through which analysis regularisers join training.

A regulariser factory is registered with ``@register_regularizer("name")`` and called as
``factory(model=model, task=task, **kwargs)`` with the ``regularizer:`` section's keywords. It returns
an :class:`ExtraLoss`: a callable ``(model, batch, logits, states) -> scalar tensor`` added to the
task loss at every training step. ``states`` is the `[B, T, S]` flattened state trajectory when the
callable has an attribute ``needs_states = True`` (the trainer then runs the model with
``return_states=True``), else None.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, Protocol

from torch import Tensor, nn

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
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(available_regularizers()) or "none registered"
        raise ValueError(f"regularizer.name: unknown regularizer {name!r}{hint} (available: {known})")
    return _REGISTRY[name](model=model, task=task, **kwargs)


__all__ = ["ExtraLoss", "available_regularizers", "make_regularizer", "register_regularizer"]
