"""The one model contract (DESIGN.md): cells do one step, models run sequences.

A :class:`Cell` maps ``(x_t, state) -> (y_t, state)`` for one time step. A :class:`RecurrentModel`
maps ``(x, state=None) -> (y, state)`` over a whole sequence and exposes the cell through ``step``,
``initial_state``, ``flatten_state`` and ``unflatten_state``. Analysis code sees any model only
through these four methods: ``F(h, I) = unflatten(step(I, unflatten_state(h))[1])``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mnemonet._checks import check_lengths, check_sequence, parameter_dtype
from mnemonet.models import state as st

State = Any


class _Stateful(nn.Module):
    """Shared by cells and models: the flat view of states, derived from ``initial_state``."""

    input_size: int
    output_size: int

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """The state at t = 0 for ``batch_size`` sequences (leaves `[B, ...]`)."""
        raise NotImplementedError

    def _template(self, device: torch.device | None = None, dtype: torch.dtype | None = None) -> State:
        return self.initial_state(1, device=device, dtype=dtype)

    @property
    def state_size(self) -> int:
        """S: the number of scalars in one sequence's flattened state."""
        return st.state_size(self._template())

    def flatten_state(self, state: State) -> Tensor:
        """The state as one vector per batch element: `[B, S]`."""
        return st.flatten(state)

    def unflatten_state(self, vec: Tensor) -> State:
        """Inverse of :meth:`flatten_state`: `[B, S]` -> state."""
        return st.unflatten(vec, self._template(vec.device, vec.dtype))

    state_limits: ClassVar[dict[str, float]] = {}  # cells: |field| <= limit for every state the dynamics reach

    def state_bounds(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> tuple[Tensor, Tensor]:
        """`[S]` lower and upper bounds of every flat state coordinate the dynamics can reach (±inf: unbounded).

        A cell declares its bounded fields in ``state_limits`` (GRU and tanh RNN: ``{"h": 1.0}``, LSTM's h);
        a model without its own limits takes those of the ``cell`` or ``core`` it wraps, else is unbounded.
        Analysis uses them to tell states a network can visit from states it never can (saturated gates).
        """
        template = self._template(device, dtype)
        child = getattr(self, "cell", None) or getattr(self, "core", None)
        if not self.state_limits and isinstance(child, _Stateful) and child.state_size == self.state_size:
            return child.state_bounds(device, dtype)
        if self.state_limits and hasattr(template, "_fields"):
            parts = [
                torch.full_like(leaf, self.state_limits.get(name, float("inf"))).reshape(-1)
                for name, leaf in zip(template._fields, template, strict=True)
            ]
            high = torch.cat(parts)  # (S,)
        else:
            high = torch.full((self.state_size,), float("inf"), device=device, dtype=dtype)
        return -high, high

    def check_state(self, state: State, batch_size: int, name: str = "state") -> State:
        """Raise a ValueError unless ``state`` matches ``initial_state(batch_size)`` leaf by leaf."""
        template = self._template()
        try:
            leaves = st.tree_leaves(state)
        except TypeError as err:
            raise ValueError(f"{name}: {err}") from None
        want = st.tree_leaves(template)
        if len(leaves) != len(want):
            described = _describe(template, batch_size)
            raise ValueError(f"{name}: expected a state like {described}, got {len(leaves)} tensors")
        for i, (got, ref) in enumerate(zip(leaves, want, strict=True)):
            expected = (batch_size, *ref.shape[1:])
            if not isinstance(got, Tensor) or tuple(got.shape) != expected:
                shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
                raise ValueError(
                    f"{name}: leaf {i} of {_describe(template, batch_size)} expected shape {expected}, got {shape}"
                )
        return state


def _unpack(batch: Any) -> tuple[Tensor, Tensor | None]:
    """``(x, lengths)`` from x, ``(x, lengths)`` or an object with ``.x`` and ``.lengths``."""
    if isinstance(batch, Tensor):
        return batch, None
    if hasattr(batch, "x"):
        return batch.x, getattr(batch, "lengths", None)
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError(f"batches: expected each batch to be x or (x, lengths), got {type(batch).__name__}")


def _describe(template: State, batch_size: int) -> str:
    if isinstance(template, tuple) and hasattr(template, "_fields"):
        fields = ", ".join(f"{f}={_describe(v, batch_size)}" for f, v in zip(template._fields, template, strict=True))
        return f"{type(template).__name__}({fields})"
    if isinstance(template, Tensor):
        return str((batch_size, *template.shape[1:]))
    return "(" + ", ".join(_describe(v, batch_size) for v in template) + ")"


class Cell(_Stateful):
    """One recurrent time step. Subclasses implement ``initial_state`` and ``forward``.

    ``forward(x_t, state, t=0, mask=None) -> (y_t, state)``:

    Args:
        x_t: `[B, input_size]` input at step t.
        state: the cell's NamedTuple state, leaves `[B, ...]`.
        t: time index of this step within the sequence (cells with per-step parameters use it).
        mask: `[B]` bool, true for sequences whose step t is real (not padding), or None.

    Returns:
        `[B, output_size]` output and the next state.

    ``Recurrent`` owns the time loop and asks the cell for three things (defaults in brackets):

    - ``prepare(x, mask)``: the per-step inputs of a whole `[B, T, I]` sequence, e.g. input projections
      computed for all steps in one matmul [``x_t`` as they are];
    - ``step(p_t, state, t, mask)``: one step from a prepared input [``forward``];
    - ``trace_step(p_t, state, t, mask)``: the same step plus named `[B, ...]` tensors worth recording
      (``RecurrentModel.trace`` stacks them over time) [none];

    and, when ``mnemonet.kernels`` are enabled and no trajectory is asked for, ``sequence(x, state, lengths)``:
    a whole-sequence kernel returning ``(y, state)``, or None to use the loop.
    """

    def prepare(self, x: Tensor, mask: Tensor | None = None) -> Sequence[Any]:
        """Per-step inputs for ``step``: T items from `[B, T, input_size]` (``mask`` `[B, T]` or None)."""
        return x.unbind(1)

    def step(self, p_t: Any, state: State, t: int = 0, mask: Tensor | None = None) -> tuple[Tensor, State]:
        """One step from ``prepare``'s item t (by default the input x_t itself)."""
        return self(p_t, state, t=t, mask=mask)

    def trace_step(
        self, p_t: Any, state: State, t: int = 0, mask: Tensor | None = None
    ) -> tuple[Tensor, State, dict[str, Tensor]]:
        """``step`` plus the named per-step tensors this cell offers for traces (none by default)."""
        y, state = self.step(p_t, state, t=t, mask=mask)
        return y, state, {}

    def sequence(self, x: Tensor, state: State, lengths: Tensor | None) -> tuple[Tensor, State] | None:
        """A whole-sequence kernel over batch-first `[B, T, I]` (padding already zeroed), or None."""
        return None


class RecurrentModel(_Stateful):
    """A model over sequences: ``forward(x, state=None, lengths=None) -> (y, state)``.

    Subclasses implement ``_run(x, state, lengths, return_states)`` on batch-first input that has
    already been checked, and ``step``.
    """

    batch_first: bool = True

    def step(self, x_t: Tensor, state: State, t: int = 0, mask: Tensor | None = None) -> tuple[Tensor, State]:
        """One time step of the whole model (``F(h, I)`` of the analysis): `[B, I]` -> `[B, H_out]`."""
        raise NotImplementedError

    def _run(
        self, x: Tensor, state: State, lengths: Tensor | None, return_states: bool
    ) -> tuple[Tensor, State, Tensor | None]:
        raise NotImplementedError

    def forward(
        self,
        x: Tensor,
        state: State | None = None,
        lengths: Tensor | None = None,
        return_states: bool = False,
    ) -> tuple[Tensor, State] | tuple[Tensor, State, Tensor]:
        """Run the model over a sequence.

        Args:
            x: `[B, T, input_size]` (or `[T, B, input_size]` with ``batch_first=False``).
            state: initial state, or None for :meth:`initial_state`.
            lengths: `[B]` integers in [1, T]; steps past a sequence's length are padding: its state
                stops updating there and its outputs are zero.
            return_states: also return the flattened state after every step.

        Returns:
            ``(y, state)`` with y `[B, T, output_size]` and the final state (at each sequence's
            last real step); with ``return_states``, also `[B, T, S]` states (layout as ``x``).
        """
        dims = ("B", "T", self.input_size) if self.batch_first else ("T", "B", self.input_size)
        check_sequence(x, "x", dims, parameter_dtype(self))
        if not self.batch_first:
            x = x.transpose(0, 1)
        B, T = x.shape[0], x.shape[1]
        lengths = check_lengths(lengths, B, T)
        if state is None:
            state = self.initial_state(B, device=x.device, dtype=x.dtype)
        else:
            self.check_state(state, B)
        y, state, states = self._run(x, state, lengths, return_states)
        if not self.batch_first:
            y = y.transpose(0, 1)
            states = states.transpose(0, 1) if states is not None else None
        if return_states:
            return y, state, states
        return y, state

    @torch.no_grad()
    def reestimate_statistics(self, batches: Iterable[Any]) -> int:
        """Re-estimate the population statistics of every batch normalisation inside the model over data.

        The protocol: a module with population statistics offers ``reset_running_stats()`` and ``momentum``
        (``StepBatchNorm`` of BN-LSTM, ``torch.nn.BatchNorm*``). Their statistics are reset, then each batch
        runs through the model with those modules in training mode (batch statistics, cumulative average as
        ``momentum=None``) and every other module in evaluation mode (no dropout), without gradient. Modes and
        momenta are restored afterwards. This is how Cooijmans et al. (2017) estimate the statistics they
        evaluate with.

        Args:
            batches: iterable of x `[B, T, I]`, ``(x, lengths)`` or objects with ``.x`` and ``.lengths`` (a
                task :class:`~mnemonet.tasks.base.Batch`).

        Returns:
            The number of batches seen.
        """
        norms = [
            m for m in self.modules() if callable(getattr(m, "reset_running_stats", None)) and hasattr(m, "momentum")
        ]
        if not norms:
            raise ValueError(
                f"model: expected a module with population statistics (e.g. a BNLSTMCell), got {type(self).__name__}"
            )
        modes = {m: m.training for m in self.modules()}
        momenta = [n.momentum for n in norms]
        try:
            self.eval()
            for n in norms:
                n.reset_running_stats()
                n.momentum = None
                n.train()
            seen = 0
            for batch in batches:
                x, lengths = _unpack(batch)
                self(x, lengths=lengths)
                seen += 1
        finally:
            for n, momentum in zip(norms, momenta, strict=True):
                n.momentum = momentum
            for m, mode in modes.items():
                m.training = mode
        return seen

    def trace(
        self, x: Tensor, state: State | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, State, dict[str, Tensor]]:
        """Run the model and record what its cells offer at every step (RIMs module activity, DNC weightings).

        Every time loop inside the model runs step by step and stacks its cell's per-step tensors.

        Args:
            x, state, lengths: as :meth:`forward`.

        Returns:
            ``(y, state, traces)``: traces maps a name to a batch-first `[B, T, ...]` tensor (zero or False
            at padded steps); names are prefixed with the path of the loop inside the model
            (``"layers.1.active"``), without prefix for a model that is itself the loop. Empty for cells
            that offer nothing.
        """
        loops = [(name, m) for name, m in self.named_modules() if hasattr(m, "_traces")]
        for _, m in loops:
            m._traces = {}
        try:
            y, state = self(x, state, lengths=lengths)
            traces = {
                (f"{name}.{key}" if name else key): value for name, m in loops for key, value in m._traces.items()
            }
        finally:
            for _, m in loops:
                m._traces = None
        return y, state, traces
