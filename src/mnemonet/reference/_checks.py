"""NumPy argument checks for the reference package, with the same messages as ``mnemonet._checks``.

``mnemonet._checks`` works on torch tensors and imports torch; the reference must not, so it keeps
its own small copy for NumPy arrays: each check names the argument and the expected shape or range,
e.g. ``x: expected shape (B, T, 8), got (4, 7)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def shape_str(shape: Sequence[int | str | None]) -> str:
    """Render a shape with ``None`` or strings as symbolic dimensions: ``(B, T, 8)``."""
    return "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"


def check_array(value: object, name: str, shape: Sequence[int | str | None]) -> np.ndarray:
    """Check that ``value`` is a real floating-point array of the given rank and fixed sizes.

    Args:
        value: what the caller passed.
        name: the argument's name, used in the message.
        shape: expected shape; an int fixes that dimension, a str or None leaves it free.

    Returns:
        ``value`` as a float64 array (a copy only when its dtype was another float).

    Raises:
        ValueError: naming ``name`` and the expected shape.
    """
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name}: expected an array of shape {shape_str(shape)}, got {type(value).__name__}")
    bad_rank = value.ndim != len(shape)
    bad_size = not bad_rank and any(isinstance(s, int) and value.shape[i] != s for i, s in enumerate(shape))
    if bad_rank or bad_size:
        raise ValueError(f"{name}: expected shape {shape_str(shape)}, got {tuple(value.shape)}")
    if not np.issubdtype(value.dtype, np.floating):
        raise ValueError(f"{name}: expected a floating-point array, got dtype {value.dtype}")
    return value.astype(np.float64, copy=False)


def check_positive(value: object, name: str, allow_zero: bool = False) -> None:
    """Raise a ValueError unless ``value`` is an int > 0 (or >= 0 with ``allow_zero``)."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)  # type: ignore[operator]
    if not ok:
        raise ValueError(f"{name}: expected an integer {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def check_real(value: object, name: str, low: float = 0.0, high: float = float("inf"), low_open: bool = False) -> float:
    """Raise a ValueError unless ``value`` is a finite real in ``[low, high]`` (``(low, high]`` if open)."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = np.isfinite(v) and (v > low if low_open else v >= low) and v <= high
    if not ok:
        left = "(" if low_open else "["
        raise ValueError(f"{name}: expected a real number in {left}{low}, {high}], got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_choice(value: object, name: str, choices: Sequence[object]) -> None:
    """Raise a ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")


def check_same_keys(grads: object, params: dict[str, np.ndarray], name: str = "grads") -> dict[str, np.ndarray]:
    """Raise a ValueError unless ``grads`` is a dict keyed like ``params`` with arrays of the same shapes."""
    if not isinstance(grads, dict):
        raise ValueError(f"{name}: expected a dict keyed like params, got {type(grads).__name__}")
    if set(grads) != set(params):
        raise ValueError(f"{name}: expected keys {sorted(params)}, got {sorted(grads)}")
    for key, p in params.items():
        check_array(grads[key], f"{name}[{key!r}]", p.shape)
    return grads
