"""Elman recurrent layer with a hand-written backward pass (backpropagation through time).

Elman (1990, "Finding structure in time") feeds the previous hidden state back as extra input:

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh,        h_t = f(a_t),

with f = tanh (torch.nn.RNN's default), relu or softsign. The output at step t is h_t. BPTT walks
the unrolled graph backwards: with δh_t = ∂L/∂y_t + ∂L/∂h_t (from step t+1),

    δa_t = δh_t ⊙ f'(a_t),      ∂L/∂h_{t-1} = W_hhᵀ δa_t,      ∂L/∂x_t = W_ihᵀ δa_t,

and the weight gradients sum δa_t times the step's inputs over t.
"""

from __future__ import annotations

import numpy as np

from mnemonet.reference._checks import check_choice
from mnemonet.reference.activations import get_activation
from mnemonet.reference.layer import RecurrentLayer, previous_states

NONLINEARITIES = ("tanh", "relu", "softsign")


class ElmanRNN(RecurrentLayer):
    """One Elman RNN layer in torch.nn.RNN's layout (``weight_ih`` `[H, D]`, ``weight_hh`` `[H, H]`).

    Args:
        input_size: D.
        hidden_size: H.
        nonlinearity: ``"tanh"``, ``"relu"`` or ``"softsign"`` (f above).
        init: ``"xavier"`` or ``"uniform"`` (see :class:`RecurrentLayer`).
        rng: Generator or seed.

    Example:
        >>> import numpy as np
        >>> rnn = ElmanRNN(3, 4, rng=0)
        >>> y, h = rnn.forward(np.ones((2, 5, 3)))
        >>> y.shape, h.shape
        ((2, 5, 4), (2, 4))
        >>> dx = rnn.backward(np.ones_like(y))
        >>> dx.shape, rnn.grads["weight_hh"].shape, rnn.dh0.shape
        ((2, 5, 3), (4, 4), (2, 4))
    """

    n_gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        init: str = "xavier",
        rng: np.random.Generator | int | None = None,
    ) -> None:
        check_choice(nonlinearity, "nonlinearity", NONLINEARITIES)
        self.f, self.f_grad = get_activation(nonlinearity)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, init, rng)
        self.dh0: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"ElmanRNN({self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r})"

    def forward(self, x: np.ndarray, h0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run the layer over a sequence: h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

        Args:
            x: `[B, T, D]` inputs.
            h0: `[B, H]` initial state, or None for zeros.

        Returns:
            ``(y, h_T)``: all states `[B, T, H]` and the last one `[B, H]`.
        """
        x = self._check_input(x)
        B, T = x.shape[:2]
        h0 = h = self._check_state(h0, "h0", B)
        W_hh, b_hh = self.params["weight_hh"], self.params["bias_hh"]
        xw = x @ self.params["weight_ih"].T + self.params["bias_ih"]  # (B, T, H): input part of a_t
        hs = np.empty((B, T, self.hidden_size))
        for t in range(T):
            h = self.f(xw[:, t] + h @ W_hh.T + b_hh)  # h_t = f(a_t)
            hs[:, t] = h
        self._cache = (x, h0, hs)
        return hs, h

    def backward(self, dy: np.ndarray | None, dh_T: np.ndarray | None = None) -> np.ndarray:
        """Backpropagation through time for the last :meth:`forward` call.

        Args:
            dy: `[B, T, H]` ∂L/∂y, or None for zeros (loss on the final state only).
            dh_T: `[B, H]` ∂L/∂h_T from whatever consumed the final state, or None for zeros.

        Returns:
            dx `[B, T, D]`. Fills ``grads`` (overwriting) and sets ``dh0`` `[B, H]` = ∂L/∂h_0.
        """
        x, h0, hs = self._require_cache()
        B, T = x.shape[:2]
        dy = self._check_grad_output(dy, B, T)
        dh = self._check_state(dh_T, "dh_T", B).copy()
        W_hh = self.params["weight_hh"]
        da = np.empty_like(hs)  # δa_t for every t
        for t in reversed(range(T)):
            dh += dy[:, t]  # δh_t = ∂L/∂y_t + W_hhᵀ δa_{t+1}
            da[:, t] = dh * self.f_grad(hs[:, t])  # δa_t = δh_t ⊙ f'(a_t)
            dh = da[:, t] @ W_hh  # ∂L/∂h_{t-1}
        self.dh0 = dh
        return self._accumulate_weight_grads(x, previous_states(h0, hs), da, da)
