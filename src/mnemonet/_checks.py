"""Early argument checks with messages that name the argument and the expected shape."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor


def did_you_mean(name: object, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``options`` to ``name``, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def shape_str(shape: Sequence[int | str | None]) -> str:
    """Render a shape with ``None`` or strings as symbolic dimensions: ``(B, T, 8)``."""
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"


def check_tensor(
    value: object,
    name: str,
    shape: Sequence[int | str | None],
    floating: bool = True,
) -> Tensor:
    """Check that ``value`` is a tensor of the given rank and fixed sizes.

    Args:
        value: what the caller passed.
        name: the argument's name, used in the message.
        shape: expected shape; an int fixes that dimension, a str or None leaves it free.
        floating: require a floating-point dtype.

    Raises:
        ValueError: naming ``name`` and the expected shape.
    """
    if not isinstance(value, Tensor):
        raise ValueError(f"{name}: expected a tensor of shape {shape_str(shape)}, got {type(value).__name__}")
    bad_rank = value.dim() != len(shape)
    bad_size = not bad_rank and any(isinstance(s, int) and value.shape[i] != s for i, s in enumerate(shape))
    if bad_rank or bad_size:
        raise ValueError(f"{name}: expected shape {shape_str(shape)}, got {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
    return value


def check_lengths(lengths: object, batch_size: int, max_len: int) -> Tensor | None:
    """Validate per-sequence lengths: `[B]` integers in ``[1, T]``; returns them as a CPU int64 tensor."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.shape[0] != batch_size:
        raise ValueError(f"lengths: expected shape ({batch_size},), got {tuple(lengths.shape)}")
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError(f"lengths: expected integers, got dtype {lengths.dtype}")
    lengths = lengths.to("cpu", torch.int64)
    if lengths.numel() and (lengths.min() < 1 or lengths.max() > max_len):
        raise ValueError(
            f"lengths: expected values in [1, {max_len}] (the sequence length T), "
            f"got min {int(lengths.min())} and max {int(lengths.max())}"
        )
    return lengths


def check_choice(value: object, name: str, choices: Sequence[object]) -> None:
    """Raise a ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")


def check_positive(value: object, name: str, allow_zero: bool = False) -> None:
    """Raise a ValueError unless ``value`` is an int > 0 (or >= 0 with ``allow_zero``)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name}: expected an integer {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def parse_positive_ints(text: str, name: str, example: str = "1,2") -> list[int]:
    """``"5, 10,5"`` -> ``[5, 10]`` (sorted, without repeats); raises a ValueError naming ``name`` on anything else."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise ValueError(f"{name}: expected comma-separated integers >= 1 such as {example}, got {text!r}")
    return sorted(set(values))


def check_sequence(x: object, name: str, shape: Sequence[int | str | None], dtype: torch.dtype | None) -> Tensor:
    """Check a model's sequence input: :func:`check_tensor`, at least one time step, the parameters' dtype.

    Args:
        x: what the caller passed, `[B, T, D]` (or `[T, B, D]`: ``shape`` names the layout).
        name: the argument's name, used in the message.
        shape: expected shape, with ``"T"`` naming the time dimension.
        dtype: the dtype of the model's floating-point parameters, or None for a model without any.

    Raises:
        ValueError: naming ``name``, what was expected and how to fix it.
    """
    x = check_tensor(x, name, shape)
    t_dim = list(shape).index("T") if "T" in shape else None
    if t_dim is not None and x.shape[t_dim] == 0:
        raise ValueError(f"{name}: expected at least one time step (T >= 1), got shape {tuple(x.shape)}")
    if dtype is not None and x.dtype != dtype:
        got, want = str(x.dtype).removeprefix("torch."), str(dtype).removeprefix("torch.")
        raise ValueError(
            f"{name}: dtype {got} does not match the model's parameters ({want}); convert the input "
            f"({name}.to(torch.{want})) or the model (model.to(torch.{got}))"
        )
    return x


def parameter_dtype(module: torch.nn.Module) -> torch.dtype | None:
    """The dtype of ``module``'s first floating-point parameter, or None when it has none."""
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def check_output_size(module: object, name: str = "model") -> int:
    """The ``output_size`` of a recurrent module, which a readout needs; a clear error when it has none.

    Raises:
        ValueError: ``module`` has no positive integer ``output_size`` attribute.
    """
    size = getattr(module, "output_size", None)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(
            f"{name}: {type(module).__name__} has no output_size (got {size!r}); a model needs an integer "
            "attribute output_size (the last dimension of the outputs it returns) so a readout can be sized"
        )
    return size
