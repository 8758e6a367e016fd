"""A Keras-style summary table of any ``nn.Module``: layer, output shape, parameter count, totals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mnemonet.models.base import RecurrentModel
from mnemonet.models.recurrent import Recurrent, Stacked


@dataclass
class SummaryRow:
    """One layer: its name, class, output shape and parameter count (recursive)."""

    name: str
    kind: str
    output_shape: tuple[int, ...] | None
    params: int


@dataclass
class ModelSummary:
    """Rows for the model's direct children (in call order) and the totals. ``str()`` renders the table."""

    rows: list[SummaryRow] = field(default_factory=list)
    total: int = 0
    trainable: int = 0

    @property
    def non_trainable(self) -> int:
        return self.total - self.trainable

    def __str__(self) -> str:
        head = ("Layer (type)", "Output Shape", "Param #")
        cells = [(f"{r.name} ({r.kind})", "?" if r.output_shape is None else str(r.output_shape), f"{r.params:,}")
                 for r in self.rows]  # fmt: skip
        widths = [max(len(head[i]), *(len(c[i]) for c in cells)) + 2 for i in range(3)] if cells else [20, 20, 10]
        rule = "=" * sum(widths)
        fmt = lambda c: c[0].ljust(widths[0]) + c[1].ljust(widths[1]) + c[2].rjust(widths[2])  # noqa: E731
        lines = [rule, fmt(head), rule, *(fmt(c) for c in cells), rule]
        lines += [f"Total params: {self.total:,}", f"Trainable params: {self.trainable:,}",
                  f"Non-trainable params: {self.non_trainable:,}"]  # fmt: skip
        return "\n".join(lines)


def _first_tensor(out: object) -> Tensor | None:
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for item in out:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _rows_of(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Direct children, ModuleLists expanded; a single recurrent layer is its own row."""
    if isinstance(model, Recurrent) or not list(model.children()):
        return [(type(model).__name__.lower(), model)]
    rows: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
            rows += [(f"{name}.{n}", c) for n, c in child.named_children()]
        elif not (isinstance(child, nn.Dropout) and isinstance(model, Stacked)):
            rows.append((name, child))
    return rows


def _recording_run(child: RecurrentModel, hook):
    run = type(child)._run

    def recorded(*args, **kwargs):
        out = run(child, *args, **kwargs)
        hook(child, args, out)
        return out

    return recorded


def summary(model: nn.Module, input_shape: Sequence[int], dtype: torch.dtype | None = None) -> ModelSummary:
    """Run ``model`` once on zeros of ``input_shape`` and tabulate its direct children.

    Works on any module built from mnemonet and torch layers: the output shape of each child is read
    by a forward hook (the first tensor of a tuple output); parameter counts include sub-modules;
    a parameter shared by two children is counted once in the totals.

    Args:
        model: the module.
        input_shape: full input shape, batch included, e.g. ``(1, 100)`` or ``(1, 20, 8)``.
        dtype: input dtype; ``torch.long`` for models that start with an ``nn.Embedding``. Defaults to
            the dtype of the model's first floating parameter, else float32.

    Returns:
        A :class:`ModelSummary`; ``print()`` it for the table.

    Example:
        >>> import mnemonet
        >>> s = summary(mnemonet.build("lstm", input_size=8, hidden_size=16), (1, 5, 8))
        >>> s.total
        1664
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected an nn.Module, got {type(model).__name__}")
    if not all(isinstance(s, int) and s > 0 for s in input_shape):
        raise ValueError(f"input_shape: expected positive integers, got {tuple(input_shape)}")
    if dtype is None:
        floats = [p.dtype for p in model.parameters() if p.is_floating_point()]
        dtype = floats[0] if floats else torch.float32
    children = _rows_of(model)
    shapes: dict[str, tuple[int, ...]] = {}
    order: list[str] = []

    def hook_for(name: str):
        def hook(module, args, out):
            t = _first_tensor(out)
            if name not in shapes:
                order.append(name)
            shapes[name] = tuple(t.shape) if t is not None else None

        return hook

    handles = [child.register_forward_hook(hook_for(name)) for name, child in children]
    for name, child in children:
        if isinstance(child, RecurrentModel):  # nested recurrent models are run through _run, not __call__
            child._run = _recording_run(child, hook_for(name))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(tuple(input_shape), dtype=dtype, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
        for _, child in children:
            child.__dict__.pop("_run", None)
    by_name = dict(children)
    names = order + [n for n, _ in children if n not in shapes]
    rows = [
        SummaryRow(n, type(by_name[n]).__name__, shapes.get(n), sum(p.numel() for p in by_name[n].parameters()))
        for n in names
    ]
    params = list(model.parameters())
    return ModelSummary(rows, sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad))
