"""Any recurrent model as a discrete-time dynamical system: the map F(h, I), its speed q and its Jacobian.

The analysis sees a model only through the model contract (DESIGN.md): a flat state ``h`` `[K, S]` is
unflattened, stepped once under a constant input ``I`` and flattened again,
``F(h, I) = flatten_state(step(I, unflatten_state(h))[1])``. The speed is Sussillo & Barak's (2013)
q(h) = ½‖F(h, I) − h‖²; Haviv, Rivkind & Barak (ICML 2019) call ‖F(h, I) − h‖² = 2q the speed. The
Jacobian dF/dh is computed for many states at once with ``torch.func``. Nothing here knows a model's class.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mnemonet._checks import check_tensor

Model = Any  # a mnemonet RecurrentModel (anything with step / flatten_state / unflatten_state)


def model_dtype(model: Model, default: torch.dtype = torch.float32) -> torch.dtype:
    """The floating-point dtype of the model's first floating parameter (``default`` if it has none)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return default


def model_device(model: Model) -> torch.device:
    """The device of the model's first parameter (CPU if it has none)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def broadcast_inputs(model: Model, inputs: Tensor, batch: int, name: str = "input") -> Tensor:
    """Expand a constant input to one row per state.

    Args:
        model: gives ``input_size`` (D).
        inputs: `[D]`, `[1, D]` (shared by all states) or `[batch, D]` (one per state).
        batch: K, the number of states.
        name: the argument's name for error messages.

    Returns:
        `[K, D]`.
    """
    D = model.input_size
    if isinstance(inputs, Tensor) and inputs.dim() == 1:
        check_tensor(inputs, name, (D,))
        inputs = inputs[None]  # (1, D)
    check_tensor(inputs, name, (None, D))
    if inputs.shape[0] not in (1, batch):
        raise ValueError(f"{name}: expected shape ({D},), (1, {D}) or ({batch}, {D}), got {tuple(inputs.shape)}")
    return inputs.expand(batch, D)  # (K, D)


def transition(model: Model, states: Tensor, inputs: Tensor, t: int = 0) -> Tensor:
    """F(h, I): one step of the model from flat states under inputs.

    Args:
        model: any model satisfying the contract.
        states: `[K, S]` flat states h.
        inputs: `[D]`, `[1, D]` or `[K, D]` inputs I.
        t: time index passed to ``step`` (models with per-step parameters, e.g. BN-LSTM's statistics).

    Returns:
        `[K, S]` next flat states F(h, I).
    """
    check_tensor(states, "states", (None, model.state_size))
    inputs = broadcast_inputs(model, inputs, states.shape[0], "inputs").to(states.dtype)
    _, new = model.step(inputs, model.unflatten_state(states), t=t)
    return model.flatten_state(new)


def speed(model: Model, states: Tensor, inputs: Tensor, t: int = 0) -> Tensor:
    """The speed q(h) = ½‖F(h, I) − h‖² of every state (Sussillo & Barak 2013; half of Haviv et al.'s ‖F − h‖²).

    Args:
        model: any model satisfying the contract.
        states: `[K, S]` flat states h.
        inputs: `[D]`, `[1, D]` or `[K, D]` inputs I.
        t: time index passed to ``step``.

    Returns:
        `[K]` speeds (differentiable with respect to ``states`` and the model's parameters).
    """
    return 0.5 * (transition(model, states, inputs, t) - states).pow(2).sum(-1)


def jacobians(model: Model, states: Tensor, inputs: Tensor, t: int = 0) -> Tensor:
    """dF/dh at every state, batched: ``torch.func.vmap(torch.func.jacrev(F))``.

    Models whose step cannot be vmapped over single states (data-dependent control flow) fall back to
    the reverse-mode Jacobian of Σ_k F(h_k, I) with respect to all states at once, whose diagonal blocks
    are the per-state Jacobians because rows of a batch do not interact (the model must be in eval mode).

    Args:
        model: any model satisfying the contract.
        states: `[K, S]` flat states.
        inputs: `[D]`, `[1, D]` or `[K, D]` inputs.
        t: time index passed to ``step``.

    Returns:
        `[K, S, S]` Jacobians, ``J[k, i, j] = dF_i / dh_j`` at state k.
    """
    check_tensor(states, "states", (None, model.state_size))
    K = states.shape[0]
    inputs = broadcast_inputs(model, inputs, K, "inputs").to(states.dtype)
    states = states.detach()

    def one(h: Tensor, x: Tensor) -> Tensor:
        return transition(model, h[None], x[None], t)[0]  # (S,)

    try:
        return torch.func.vmap(torch.func.jacrev(one))(states, inputs)  # (K, S, S)
    except (RuntimeError, NotImplementedError):
        pass

    def summed(h: Tensor) -> Tensor:
        return transition(model, h, inputs, t).sum(0)  # (S,)

    full = torch.autograd.functional.jacobian(summed, states)  # (S, K, S)
    return full.permute(1, 0, 2).contiguous()  # (K, S, S)
