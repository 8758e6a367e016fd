"""Where the DNC paper is silent: the choices of each reference implementation, and deepmind/dnc's weight layout.

Graves et al. (2016) give the equations; the reference implementations fill four gaps differently. mnemonet
follows the paper by default and offers deepmind/dnc's choices as options, selectable together with
``build("dnc", ..., reference="deepmind")`` (a preset's ``model.reference: deepmind``). ``docs/dnc_differences.md``
lists every choice with its reason.

| option | ``"paper"`` (default) | ``"deepmind"`` |
| --- | --- | --- |
| ``usage_write_gradient`` | True: ∂u_t/∂w^w_{t−1} flows | False: stop-gradient (``Freeness``) |
| ``outer_eps`` | False: k·M / (|k|_ε |M|_ε) | True: k·M / (|k|_ε |M|_ε + ε) |
| ``strength`` | ``"oneplus"``: β = 1 + softplus(β̂) | ``"softplus"``: β = softplus(β̂) |
| ``clip_value`` | None | 20: controller output and state, and y, clipped to ±20 |

deepmind/dnc also orders each read head's modes (backward…, forward…, content) where the paper and mnemonet
use (backward…, content, forward…), and projects the controller output onto each control with its own
``snt.Linear``; :func:`from_deepmind_layout` turns those weights into this library's one interface matrix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

REFERENCES: dict[str, dict[str, Any]] = {
    "paper": {"usage_write_gradient": True, "outer_eps": False, "strength": "oneplus", "clip_value": None},
    "deepmind": {"usage_write_gradient": False, "outer_eps": True, "strength": "softplus", "clip_value": 20.0},
}
"""The option values of each reference (see the module docstring)."""

DEEPMIND_PARTS = (
    "read_keys", "write_keys", "write_vectors", "read_strengths", "write_strengths",
    "erase_vectors", "free_gate", "allocation_gate", "write_gate", "read_mode",
)  # fmt: skip
"""Names of deepmind/dnc's per-control linear layers (``MemoryAccess._read_inputs``), in mnemonet's ξ order."""


def resolve_reference(reference: str, **choices: Any) -> dict[str, Any]:
    """The options of ``reference`` with every choice that is not None taking precedence.

    Args:
        reference: ``"paper"`` or ``"deepmind"``.
        **choices: ``usage_write_gradient``, ``outer_eps``, ``strength``, ``clip_value``; None takes the
            reference's value.

    Example:
        >>> resolve_reference("deepmind", outer_eps=False)["outer_eps"], resolve_reference("deepmind")["strength"]
        (False, 'softplus')
    """
    if reference not in REFERENCES:
        raise ValueError(f"reference: expected one of {sorted(REFERENCES)}, got {reference!r}")
    unknown = set(choices) - set(REFERENCES[reference])
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]}: not a reference choice (expected {sorted(REFERENCES[reference])})")
    return {k: (v if choices.get(k) is None else choices[k]) for k, v in REFERENCES[reference].items()}


def deepmind_mode_order(num_writes: int) -> list[int]:
    """Index in deepmind's mode order (backward…, forward…, content) of our modes (backward…, content, forward…).

    Example:
        >>> deepmind_mode_order(1)
        [0, 2, 1]
    """
    Hw = num_writes
    return [*range(Hw), 2 * Hw, *range(Hw, 2 * Hw)]


def from_deepmind_layout(
    params: Mapping[str, tuple[Any, Any]], num_reads: int, word_size: int, num_writes: int = 1
) -> tuple[Tensor, Tensor]:
    """mnemonet's interface weight and bias from deepmind/dnc's per-control linear layers.

    deepmind/dnc projects the controller output h with one ``snt.Linear`` per control (weight `[H, out]`, as
    ``h @ w + b``; reshapes are head-major) and orders each read head's modes (backward…, forward…, content).
    mnemonet has one ``nn.Linear`` (weight `[out, H]`) whose rows are grouped by nonlinearity (raw | strengths |
    sigmoid | softmax, see ``interface.interface_groups``) with modes (backward…, content, forward…). Load the
    result with ``cell.access.interface.weight.copy_(w)`` and ``.bias.copy_(b)``, and build the cell with
    ``reference="deepmind"`` so the nonlinearities match too.

    Args:
        params: for each name in :data:`DEEPMIND_PARTS`, ``(w, b)``: w `[H, out]` and b `[out]` (NumPy arrays or
            tensors), out = R·W, Hw·W, Hw·W, R, Hw, Hw·W, R, Hw, Hw, R·(1 + 2Hw) in that order.
        num_reads, word_size, num_writes: R, W, Hw.

    Returns:
        (weight `[interface_size, H]`, bias `[interface_size]`), float64 unless the inputs are tensors of another
        floating dtype.
    """
    R, W, Hw = num_reads, word_size, num_writes
    sizes = dict(zip(DEEPMIND_PARTS, (R * W, Hw * W, Hw * W, R, Hw, Hw * W, R, Hw, Hw, R * (1 + 2 * Hw)), strict=True))
    missing = [name for name in DEEPMIND_PARTS if name not in params]
    if missing:
        raise ValueError(f"params: missing deepmind/dnc layer {missing[0]!r} (expected {list(DEEPMIND_PARTS)})")
    weights, biases, H = [], [], None
    for name in DEEPMIND_PARTS:
        w, b = (torch.as_tensor(v) for v in params[name])
        if w.dim() != 2 or w.shape[1] != sizes[name] or b.shape != (sizes[name],):
            raise ValueError(
                f"params[{name!r}]: expected w (H, {sizes[name]}) and b ({sizes[name]},), "
                f"got {tuple(w.shape)} and {tuple(b.shape)}"
            )
        if H is not None and w.shape[0] != H:
            raise ValueError(f"params[{name!r}]: expected w with {H} rows (the controller size), got {w.shape[0]}")
        H = w.shape[0]
        if name == "read_mode":  # reorder each head's modes: deepmind (b…, f…, c) -> ours (b…, c, f…)
            order = torch.tensor(deepmind_mode_order(Hw))
            w = w.reshape(H, R, 1 + 2 * Hw)[:, :, order].reshape(H, -1)  # (H, R·(1 + 2Hw))
            b = b.reshape(R, 1 + 2 * Hw)[:, order].reshape(-1)
        weights.append(w)
        biases.append(b)
    dtype = torch.promote_types(weights[0].dtype, torch.float32) if weights[0].is_floating_point() else torch.float64
    weight = torch.cat(weights, 1).T.to(dtype).contiguous()  # (interface_size, H)
    bias = torch.cat(biases).to(dtype)
    return weight, bias
