"""Long short-term memory layer with a hand-written backward pass (backpropagation through time).

Hochreiter & Schmidhuber (1997), with the forget gate of Gers et al. (2000), in torch.nn.LSTM's
form and gate order i, f, g, o:

    [ã_i, ã_f, ã_g, ã_o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    i_t = σ(ã_i),  f_t = σ(ã_f),  g_t = tanh(ã_g),  o_t = σ(ã_o)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t,       h_t = o_t ⊙ tanh(c_t).

Backward, with δh_t = ∂L/∂y_t + ∂L/∂h_t (from step t+1) and δc_t carried from step t+1:

    δo = δh_t ⊙ tanh(c_t),    δc_t += δh_t ⊙ o_t ⊙ (1 - tanh²(c_t)),
    δi = δc_t ⊙ g_t,  δg = δc_t ⊙ i_t,  δf = δc_t ⊙ c_{t-1},  ∂L/∂c_{t-1} = δc_t ⊙ f_t,
    δã = [δi ⊙ i(1-i), δf ⊙ f(1-f), δg ⊙ (1-g²), δo ⊙ o(1-o)],   ∂L/∂h_{t-1} = W_hhᵀ δã.

The additive path c_{t-1} -> c_t (scaled only by f_t) is what lets gradients survive long delays.
"""

from __future__ import annotations

import numpy as np

from mnemonet.reference.activations import sigmoid, sigmoid_grad, tanh_grad
from mnemonet.reference.layer import RecurrentLayer, previous_states


class LSTM(RecurrentLayer):
    """One LSTM layer in torch.nn.LSTM's layout (``weight_ih`` `[4H, D]`, gates i, f, g, o).

    Args:
        input_size: D.
        hidden_size: H.
        init: ``"xavier"`` or ``"uniform"`` (see :class:`RecurrentLayer`).
        rng: Generator or seed.

    Example:
        >>> import numpy as np
        >>> lstm = LSTM(3, 4, rng=0)
        >>> y, (h, c) = lstm.forward(np.ones((2, 5, 3)))
        >>> y.shape, c.shape
        ((2, 5, 4), (2, 4))
        >>> dx = lstm.backward(None, dh_T=np.ones((2, 4)))
        >>> dx.shape, lstm.dc0.shape
        ((2, 5, 3), (2, 4))
    """

    n_gates = 4
    state_names = ("h", "c")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        init: str = "xavier",
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, init, rng)
        self.dh0: np.ndarray | None = None
        self.dc0: np.ndarray | None = None

    def forward(
        self, x: np.ndarray, h0: np.ndarray | None = None, c0: np.ndarray | None = None
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Run the layer over a sequence (equations in the module docstring).

        Args:
            x: `[B, T, D]` inputs.
            h0: `[B, H]` initial hidden state, or None for zeros.
            c0: `[B, H]` initial cell state, or None for zeros.

        Returns:
            ``(y, (h_T, c_T))``: hidden states `[B, T, H]` and the final hidden and cell states `[B, H]`.
        """
        x = self._check_input(x)
        B, T = x.shape[:2]
        H = self.hidden_size
        h = self._check_state(h0, "h0", B)
        c = self._check_state(c0, "c0", B)
        h0, c0 = h, c
        W_hh, b_hh = self.params["weight_hh"], self.params["bias_hh"]
        xw = x @ self.params["weight_ih"].T + self.params["bias_ih"]  # (B, T, 4H)
        gates = np.empty((B, T, 4 * H))  # activated gates [i, f, g, o] per step
        hs = np.empty((B, T, H))
        cs = np.empty((B, T, H))
        for t in range(T):
            a = xw[:, t] + h @ W_hh.T + b_hh  # (B, 4H) pre-activations ã
            i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 3 * H :])
            g = np.tanh(a[:, 2 * H : 3 * H])
            c = f * c + i * g  # c_t = f ⊙ c_{t-1} + i ⊙ g
            h = o * np.tanh(c)  # h_t = o ⊙ tanh(c_t)
            gates[:, t] = np.concatenate([i, f, g, o], axis=1)  # (B, 4H)
            hs[:, t], cs[:, t] = h, c
        self._cache = (x, h0, c0, gates, hs, cs)
        return hs, (h, c)

    def backward(
        self, dy: np.ndarray | None, dh_T: np.ndarray | None = None, dc_T: np.ndarray | None = None
    ) -> np.ndarray:
        """Backpropagation through time for the last :meth:`forward` call.

        Args:
            dy: `[B, T, H]` ∂L/∂y, or None for zeros.
            dh_T: `[B, H]` ∂L/∂h_T, or None for zeros.
            dc_T: `[B, H]` ∂L/∂c_T, or None for zeros.

        Returns:
            dx `[B, T, D]`. Fills ``grads`` (overwriting) and sets ``dh0``, ``dc0`` `[B, H]`.
        """
        x, h0, c0, gates, hs, cs = self._require_cache()
        B, T = x.shape[:2]
        H = self.hidden_size
        dy = self._check_grad_output(dy, B, T)
        dh = self._check_state(dh_T, "dh_T", B).copy()
        dc = self._check_state(dc_T, "dc_T", B).copy()
        W_hh = self.params["weight_hh"]
        c_prev = previous_states(c0, cs)  # (B, T, H): c_{t-1}
        da = np.empty_like(gates)  # δã for every step
        for t in reversed(range(T)):
            i, f, g, o = (gates[:, t, k * H : (k + 1) * H] for k in range(4))
            tc = np.tanh(cs[:, t])
            dh += dy[:, t]  # δh_t
            dc += dh * o * tanh_grad(tc)  # δc_t
            da[:, t, :H] = dc * g * sigmoid_grad(i)  # δã_i
            da[:, t, H : 2 * H] = dc * c_prev[:, t] * sigmoid_grad(f)  # δã_f
            da[:, t, 2 * H : 3 * H] = dc * i * tanh_grad(g)  # δã_g
            da[:, t, 3 * H :] = dh * tc * sigmoid_grad(o)  # δã_o
            dc = dc * f  # ∂L/∂c_{t-1}
            dh = da[:, t] @ W_hh  # ∂L/∂h_{t-1}
        self.dh0, self.dc0 = dh, dc
        return self._accumulate_weight_grads(x, previous_states(h0, hs), da, da)
