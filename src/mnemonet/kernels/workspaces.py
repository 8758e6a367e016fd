"""Reusable workspaces for the whole-sequence kernels: per-step buffers made once per shape, lent out again.

A kernel that runs all T steps in one autograd node needs buffers of `[T, B, ...]` and their per-step
views. Made afresh on every call they cost more than the arithmetic they hold: a fresh buffer of a few MiB
comes from the operating system page by page (page faults, zeroed pages), and making the views costs about
as much as the small per-step kernels they serve. A :class:`Pool` keeps up to two free workspaces, each
under its key (shapes, dtype, device, options); a forward's workspace stays with its autograd node through a
:class:`Lease` until the node is freed (so ``retain_graph`` and several graphs alive at once are safe), a
backward's only while it runs. :func:`release_workspaces` drops every pool's free workspaces.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from torch import Tensor

_POOLS: list[Pool] = []


class Pool:
    """Up to two free workspaces, each under its key (shapes, dtype, device); thread-safe (atomic deque ops).

    Args:
        max_bytes: workspaces larger than this are not kept.
    """

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        self.free: deque[tuple[tuple, Any]] = deque(maxlen=2)
        self.max_bytes = max_bytes
        _POOLS.append(self)

    def take(self, key: tuple, make: Callable[[], Any]) -> Any:
        """A free workspace made for ``key``, or ``make()``."""
        found, others = None, []
        while True:
            try:
                item = self.free.popleft()
            except IndexError:
                break
            if found is None and item[0] == key:
                found = item[1]
            else:
                others.append(item)
        self.free.extend(others)
        return make() if found is None else found

    def give(self, key: tuple, workspace: Any, nbytes: int) -> None:
        """Keep ``workspace`` for a later :meth:`take` (unless it is too big to hold on to)."""
        if nbytes <= self.max_bytes:
            self.free.append((key, workspace))


class Lease:
    """Gives a workspace back to its pool when the autograd node that holds this lease is freed."""

    __slots__ = ("key", "nbytes", "pool", "workspace")

    def __init__(self, pool: Pool, key: tuple, workspace: Any, nbytes: int) -> None:
        self.pool, self.key, self.workspace, self.nbytes = pool, key, workspace, nbytes

    def __del__(self) -> None:
        self.pool.give(self.key, self.workspace, self.nbytes)


def storage_bytes(*tensors: Tensor | None) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views of a few buffers count each buffer once)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors if t is not None}
    return sum(storages.values())


def release_workspaces() -> None:
    """Drop the free workspaces kept for later calls (their memory goes back to the allocator)."""
    for pool in _POOLS:
        pool.free.clear()
