"""Helpers over recurrent states: nested NamedTuples (or tuples) whose leaves are tensors with batch first.

Every state in mnemonet is such a tree. These helpers let the time loop mask padded steps and let
analysis code see any state as one flat vector per batch element, without knowing the model's class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

State = Any  # a Tensor, or a (Named)tuple of States


def _is_namedtuple(obj: object) -> bool:
    return isinstance(obj, tuple) and hasattr(obj, "_fields")


def tree_leaves(state: State) -> list[Tensor]:
    """The tensors of a state tree, depth first, in field order."""
    if isinstance(state, Tensor):
        return [state]
    if isinstance(state, (tuple, list)):
        return [leaf for child in state for leaf in tree_leaves(child)]
    raise TypeError(f"state: expected a Tensor or a (Named)tuple of Tensors, got {type(state).__name__}")


def tree_map(fn: Callable[..., Tensor], state: State, *others: State) -> State:
    """Apply ``fn`` leaf by leaf to one or more state trees of the same structure."""
    if isinstance(state, Tensor):
        return fn(state, *others)
    if isinstance(state, (tuple, list)):
        children = [tree_map(fn, *parts) for parts in zip(state, *others, strict=True)]
        if _is_namedtuple(state):
            return type(state)(*children)
        return type(state)(children)
    raise TypeError(f"state: expected a Tensor or a (Named)tuple of Tensors, got {type(state).__name__}")


def tree_unflatten(template: State, leaves: list[Tensor]) -> State:
    """Rebuild a tree shaped like ``template`` from its leaves (inverse of :func:`tree_leaves`)."""
    it = iter(leaves)
    out = tree_map(lambda _: next(it), template)
    if next(it, None) is not None:
        raise ValueError("leaves: more tensors than the template has leaves")
    return out


def tree_where(mask: Tensor, new: State, old: State) -> State:
    """Per batch element, take ``new`` where ``mask`` is true and ``old`` elsewhere.

    Args:
        mask: `[B]` bool.
        new, old: state trees whose leaves are `[B, ...]`.
    """

    def pick(a: Tensor, b: Tensor) -> Tensor:
        m = mask.reshape(mask.shape[0], *([1] * (a.dim() - 1)))
        return torch.where(m, a, b)

    return tree_map(pick, new, old)


def flatten(state: State) -> Tensor:
    """Concatenate every leaf of a state, flattened past the batch axis: `[B, S]`."""
    leaves = tree_leaves(state)
    return torch.cat([leaf.reshape(leaf.shape[0], -1) for leaf in leaves], dim=1)


def unflatten(vec: Tensor, template: State) -> State:
    """Inverse of :func:`flatten`, given a template state of any batch size.

    Args:
        vec: `[B, S]` flat states.
        template: a state whose leaves' shapes past the batch axis define the layout.
    """
    leaves = tree_leaves(template)
    sizes = [int(torch.tensor(leaf.shape[1:]).prod().item()) for leaf in leaves]
    if vec.dim() != 2 or vec.shape[1] != sum(sizes):
        raise ValueError(f"vec: expected a flat state of shape (B, {sum(sizes)}), got {tuple(vec.shape)}")
    parts = torch.split(vec, sizes, dim=1)
    shaped = [p.reshape(vec.shape[0], *leaf.shape[1:]) for p, leaf in zip(parts, leaves, strict=True)]
    return tree_unflatten(template, shaped)


def state_size(template: State) -> int:
    """Number of scalars in one batch element's state (S of :func:`flatten`)."""
    return sum(leaf[0].numel() for leaf in tree_leaves(template))
