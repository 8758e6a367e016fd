"""What the three reference recurrent layers share: parameters in torch's layout, gradients, checks.

A layer owns ``params`` (``weight_ih`` `[G*H, D]`, ``weight_hh`` `[G*H, H]`, ``bias_ih`` `[G*H]`,
``bias_hh`` `[G*H]`, G gate blocks stacked in torch's order) and ``grads``, a dict with the same
keys and shapes that ``backward`` fills. ``forward`` keeps what backpropagation through time needs in
a cache; ``backward`` reads it and also stores the gradient with respect to the initial state.
Optimisers update ``params`` in place, so the arrays a layer holds are the ones it uses next call.
"""

from __future__ import annotations

import math

import numpy as np

from mnemonet.reference._checks import check_array, check_choice, check_positive
from mnemonet.reference.init import INITS, as_generator, gate_weights


def merge_batch_time(a: np.ndarray) -> np.ndarray:
    """`[B, T, K]` -> `[B*T, K]` , so one matmul covers every step."""
    return a.reshape(-1, a.shape[-1])  # (B*T, K)


def previous_states(h0: np.ndarray, hs: np.ndarray) -> np.ndarray:
    """States entering each step: ``[h_0, h_1, ..., h_{T-1}]`` from h_0 `[B, H]` and hs `[B, T, H]`."""
    return np.concatenate([h0[:, None, :], hs[:, :-1, :]], axis=1)  # (B, T, H)


class RecurrentLayer:
    """Base of :class:`ElmanRNN`, :class:`LSTM` and :class:`GRU` (one layer, one direction, batch first).

    Args:
        input_size: D, features per input step.
        hidden_size: H, units of the hidden state.
        init: ``"xavier"`` (Glorot uniform per gate block, zero biases) or ``"uniform"`` (torch's
            default: every weight and bias U[-1/√H, 1/√H]).
        rng: NumPy Generator or seed for the initial weights.
    """

    n_gates: int = 1
    state_names: tuple[str, ...] = ("h",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        init: str = "xavier",
        rng: np.random.Generator | int | None = None,
    ) -> None:
        check_positive(input_size, "input_size")
        check_positive(hidden_size, "hidden_size")
        check_choice(init, "init", INITS)
        gen = as_generator(rng)
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        G, H, D = self.n_gates, self.hidden_size, self.input_size
        self.params: dict[str, np.ndarray] = {
            "weight_ih": gate_weights(G, H, D, init, gen),
            "weight_hh": gate_weights(G, H, H, init, gen),
        }
        if init == "uniform":
            k = 1.0 / math.sqrt(H)
            self.params["bias_ih"] = gen.uniform(-k, k, size=G * H)
            self.params["bias_hh"] = gen.uniform(-k, k, size=G * H)
        else:
            self.params["bias_ih"] = np.zeros(G * H)
            self.params["bias_hh"] = np.zeros(G * H)
        self.grads: dict[str, np.ndarray] = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache: tuple | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size})"

    def zero_grad(self) -> None:
        """Set every entry of ``grads`` to zero (in place)."""
        for g in self.grads.values():
            g.fill(0.0)

    def load_params(self, params: dict[str, np.ndarray]) -> None:
        """Copy arrays into ``params`` in place (same keys and shapes), e.g. from torch.nn.LSTM."""
        if not isinstance(params, dict) or set(params) != set(self.params):
            got = sorted(params) if isinstance(params, dict) else type(params).__name__
            raise ValueError(f"params: expected keys {sorted(self.params)}, got {got}")
        for key, p in self.params.items():
            p[...] = check_array(np.asarray(params[key], dtype=np.float64), f"params[{key!r}]", p.shape)

    # ----------------------------------------------------------------- checks shared by the layers
    def _check_input(self, x: object) -> np.ndarray:
        x = check_array(x, "x", ("B", "T", self.input_size))
        if x.shape[1] == 0:
            raise ValueError(f"x: expected at least one time step, got shape {x.shape}")
        return x

    def _check_state(self, value: object, name: str, batch_size: int) -> np.ndarray:
        if value is None:
            return np.zeros((batch_size, self.hidden_size))
        return check_array(value, name, (batch_size, self.hidden_size))

    def _check_grad_output(self, dy: object, batch_size: int, steps: int) -> np.ndarray:
        if dy is None:
            return np.zeros((batch_size, steps, self.hidden_size))
        return check_array(dy, "dy", (batch_size, steps, self.hidden_size))

    def _require_cache(self) -> tuple:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache

    def _accumulate_weight_grads(
        self, x: np.ndarray, h_prev: np.ndarray, d_ih: np.ndarray, d_hh: np.ndarray
    ) -> np.ndarray:
        """Fill ``grads`` from the gate pre-activation gradients and return dx.

        With a_t = W_ih x_t + b_ih (input part) and W_hh h_{t-1} + b_hh (recurrent part):
        ∂L/∂W_ih = Σ_t d_ih_tᵀ x_t, ∂L/∂W_hh = Σ_t d_hh_tᵀ h_{t-1}, ∂L/∂b = Σ_t d_t, ∂L/∂x_t = d_ih_t W_ih.

        Args:
            x: `[B, T, D]` inputs; h_prev: `[B, T, H]` states entering each step.
            d_ih: `[B, T, G*H]` gradient of the input part; d_hh: `[B, T, G*H]` of the recurrent part.
        """
        d_ih2 = merge_batch_time(d_ih)  # (B*T, G*H)
        d_hh2 = merge_batch_time(d_hh)  # (B*T, G*H)
        self.grads["weight_ih"][...] = d_ih2.T @ merge_batch_time(x)
        self.grads["weight_hh"][...] = d_hh2.T @ merge_batch_time(h_prev)
        self.grads["bias_ih"][...] = d_ih2.sum(axis=0)
        self.grads["bias_hh"][...] = d_hh2.sum(axis=0)
        return d_ih @ self.params["weight_ih"]  # (B, T, D)
