"""Gated recurrent unit layer with a hand-written backward pass (backpropagation through time).

Cho et al. (2014), in torch.nn.GRU's form and gate order r, z, n (the reset gate acts on the
recurrent term after its matmul, so W_hn h + b_hn is kept whole):

    r_t = σ(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = σ(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t ⊙ (W_hn h_{t-1} + b_hn))
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}.

Backward, with δh_t = ∂L/∂y_t + ∂L/∂h_t (from step t+1) and m_t = W_hn h_{t-1} + b_hn:

    δã_n = δh_t ⊙ (1 - z_t) ⊙ (1 - n_t²),   δã_z = δh_t ⊙ (h_{t-1} - n_t) ⊙ z_t(1 - z_t),
    δã_r = δã_n ⊙ m_t ⊙ r_t(1 - r_t),       δm_t = δã_n ⊙ r_t,
    ∂L/∂h_{t-1} = δh_t ⊙ z_t + W_hhᵀ [δã_r, δã_z, δm_t],   ∂L/∂x_t = W_ihᵀ [δã_r, δã_z, δã_n].
"""

from __future__ import annotations

import numpy as np

from mnemonet.reference.activations import sigmoid, sigmoid_grad, tanh_grad
from mnemonet.reference.layer import RecurrentLayer, previous_states


class GRU(RecurrentLayer):
    """One GRU layer in torch.nn.GRU's layout (``weight_ih`` `[3H, D]`, gates r, z, n).

    Args:
        input_size: D.
        hidden_size: H.
        init: ``"xavier"`` or ``"uniform"`` (see :class:`RecurrentLayer`).
        rng: Generator or seed.

    Example:
        >>> import numpy as np
        >>> gru = GRU(3, 4, rng=0)
        >>> y, h = gru.forward(np.ones((2, 5, 3)))
        >>> dx = gru.backward(np.ones_like(y))
        >>> dx.shape, gru.grads["weight_ih"].shape
        ((2, 5, 3), (12, 3))
    """

    n_gates = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        init: str = "xavier",
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, init, rng)
        self.dh0: np.ndarray | None = None

    def forward(self, x: np.ndarray, h0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Run the layer over a sequence (equations in the module docstring).

        Args:
            x: `[B, T, D]` inputs.
            h0: `[B, H]` initial state, or None for zeros.

        Returns:
            ``(y, h_T)``: all states `[B, T, H]` and the last one `[B, H]`.
        """
        x = self._check_input(x)
        B, T = x.shape[:2]
        H = self.hidden_size
        h = self._check_state(h0, "h0", B)
        h0 = h
        W_hh, b_hh = self.params["weight_hh"], self.params["bias_hh"]
        xw = x @ self.params["weight_ih"].T + self.params["bias_ih"]  # (B, T, 3H)
        gates = np.empty((B, T, 3 * H))  # activated [r, z, n] per step
        m = np.empty((B, T, H))  # m_t = W_hn h_{t-1} + b_hn
        hs = np.empty((B, T, H))
        for t in range(T):
            hw = h @ W_hh.T + b_hh  # (B, 3H): recurrent parts
            r = sigmoid(xw[:, t, :H] + hw[:, :H])
            z = sigmoid(xw[:, t, H : 2 * H] + hw[:, H : 2 * H])
            n = np.tanh(xw[:, t, 2 * H :] + r * hw[:, 2 * H :])
            h = (1.0 - z) * n + z * h  # h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}
            gates[:, t] = np.concatenate([r, z, n], axis=1)  # (B, 3H)
            m[:, t] = hw[:, 2 * H :]
            hs[:, t] = h
        self._cache = (x, h0, gates, m, hs)
        return hs, h

    def backward(self, dy: np.ndarray | None, dh_T: np.ndarray | None = None) -> np.ndarray:
        """Backpropagation through time for the last :meth:`forward` call.

        Args:
            dy: `[B, T, H]` ∂L/∂y, or None for zeros.
            dh_T: `[B, H]` ∂L/∂h_T, or None for zeros.

        Returns:
            dx `[B, T, D]`. Fills ``grads`` (overwriting) and sets ``dh0`` `[B, H]`.
        """
        x, h0, gates, m, hs = self._require_cache()
        B, T = x.shape[:2]
        H = self.hidden_size
        dy = self._check_grad_output(dy, B, T)
        dh = self._check_state(dh_T, "dh_T", B).copy()
        W_hh = self.params["weight_hh"]
        h_prev = previous_states(h0, hs)  # (B, T, H): h_{t-1}
        d_ih = np.empty_like(gates)  # [δã_r, δã_z, δã_n]
        d_hh = np.empty_like(gates)  # [δã_r, δã_z, δm]
        for t in reversed(range(T)):
            r, z, n = (gates[:, t, k * H : (k + 1) * H] for k in range(3))
            dh += dy[:, t]  # δh_t
            da_n = dh * (1.0 - z) * tanh_grad(n)
            da_z = dh * (h_prev[:, t] - n) * sigmoid_grad(z)
            da_r = da_n * m[:, t] * sigmoid_grad(r)
            d_ih[:, t, :H], d_ih[:, t, H : 2 * H], d_ih[:, t, 2 * H :] = da_r, da_z, da_n
            d_hh[:, t, :H], d_hh[:, t, H : 2 * H], d_hh[:, t, 2 * H :] = da_r, da_z, da_n * r
            dh = dh * z + d_hh[:, t] @ W_hh  # ∂L/∂h_{t-1}
        self.dh0 = dh
        return self._accumulate_weight_grads(x, h_prev, d_ih, d_hh)
