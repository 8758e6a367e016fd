"""Dense (fully connected) read-out layer with a hand-written backward pass.

y = x Wᵀ + b applied to the last axis, so the same layer maps every time step of `[B, T, H]` hidden
states to `[B, T, V]` logits. Backward: ∂L/∂W = Σ δyᵀ x, ∂L/∂b = Σ δy, ∂L/∂x = δy W, the sums
running over every leading position (batch and time).
"""

from __future__ import annotations

import numpy as np

from mnemonet.reference._checks import check_array, check_positive
from mnemonet.reference.init import as_generator, xavier_uniform


class Linear:
    """y = x Wᵀ + b in torch.nn.Linear's layout (``weight`` `[O, I]`, ``bias`` `[O]`).

    Args:
        in_features: I.
        out_features: O.
        rng: Generator or seed; the weight is Xavier uniform, the bias zero.

    Example:
        >>> import numpy as np
        >>> lin = Linear(4, 3, rng=0)
        >>> lin.forward(np.ones((2, 5, 4))).shape
        (2, 5, 3)
    """

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator | int | None = None) -> None:
        check_positive(in_features, "in_features")
        check_positive(out_features, "out_features")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.params: dict[str, np.ndarray] = {
            "weight": xavier_uniform((self.out_features, self.in_features), as_generator(rng)),
            "bias": np.zeros(self.out_features),
        }
        self.grads: dict[str, np.ndarray] = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Linear({self.in_features}, {self.out_features})"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """`[..., I]` -> `[..., O]`: y = x Wᵀ + b."""
        if not isinstance(x, np.ndarray) or x.ndim < 1:
            raise ValueError(f"x: expected an array of shape (..., {self.in_features}), got {type(x).__name__}")
        x = check_array(x, "x", (*(None,) * (x.ndim - 1), self.in_features))
        self._x = x
        return x @ self.params["weight"].T + self.params["bias"]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Gradients for the last :meth:`forward`: fills ``grads`` (overwriting), returns dx `[..., I]`."""
        if self._x is None:
            raise RuntimeError("Linear.backward called before forward")
        dy = check_array(dy, "dy", (*self._x.shape[:-1], self.out_features))
        dy2 = dy.reshape(-1, self.out_features)  # (N, O), N = all leading positions
        self.grads["weight"][...] = dy2.T @ self._x.reshape(-1, self.in_features)  # (O, I)
        self.grads["bias"][...] = dy2.sum(axis=0)
        return dy @ self.params["weight"]
