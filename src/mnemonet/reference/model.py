"""A complete trainable reference model: one recurrent layer, a dense read-out, softmax cross-entropy.

At every step t the model reads x_t, updates its recurrent state, and scores V classes:
z_t = W_out h_t + b_out, p_t = softmax(z_t), L = mean over kept steps of -log p_t[y_t]. Its
``params`` and ``grads`` are flat dicts (``"rnn.weight_ih"``, ``"out.weight"``, ...) sharing the
layers' arrays, so one optimiser updates the whole model in place.
"""

from __future__ import annotations

import numpy as np

from mnemonet.reference._checks import check_choice
from mnemonet.reference.gru import GRU
from mnemonet.reference.init import as_generator
from mnemonet.reference.layer import RecurrentLayer
from mnemonet.reference.linear import Linear
from mnemonet.reference.losses import softmax_cross_entropy
from mnemonet.reference.lstm import LSTM
from mnemonet.reference.rnn import ElmanRNN

CELLS = ("rnn", "lstm", "gru")


class SequenceModel:
    """Recurrent layer -> Linear -> per-step softmax cross-entropy, all in NumPy float64.

    Args:
        cell: ``"rnn"`` (Elman), ``"lstm"`` or ``"gru"``.
        input_size: D.
        hidden_size: H.
        output_size: V, number of classes per step.
        nonlinearity: Elman RNN only: ``"tanh"``, ``"relu"`` or ``"softsign"``.
        init: ``"xavier"`` or ``"uniform"`` for the recurrent layer.
        rng: Generator or seed.

    Example:
        >>> import numpy as np
        >>> model = SequenceModel("lstm", 3, 8, 3, rng=0)
        >>> x = np.eye(3)[np.array([[0, 1, 2, 0]])]  # (1, 4, 3) one-hot
        >>> loss, grads = model.loss_and_grads(x, np.array([[1, 2, 0, 1]]))
        >>> bool(abs(loss - np.log(3)) < 0.5), sorted(grads) == sorted(model.params)  # near chance: log V
        (True, True)
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        nonlinearity: str = "tanh",
        init: str = "xavier",
        rng: np.random.Generator | int | None = None,
    ) -> None:
        check_choice(cell, "cell", CELLS)
        gen = as_generator(rng)
        self.cell = cell
        self.rnn: RecurrentLayer
        if cell == "rnn":
            self.rnn = ElmanRNN(input_size, hidden_size, nonlinearity=nonlinearity, init=init, rng=gen)
        else:
            self.rnn = (LSTM if cell == "lstm" else GRU)(input_size, hidden_size, init=init, rng=gen)
        self.out = Linear(hidden_size, output_size, rng=gen)
        self.params: dict[str, np.ndarray] = {
            **{f"rnn.{k}": v for k, v in self.rnn.params.items()},
            **{f"out.{k}": v for k, v in self.out.params.items()},
        }
        self.grads: dict[str, np.ndarray] = {
            **{f"rnn.{k}": v for k, v in self.rnn.grads.items()},
            **{f"out.{k}": v for k, v in self.out.grads.items()},
        }

    def __repr__(self) -> str:
        return f"SequenceModel({self.rnn!r}, {self.out!r})"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Per-step logits z `[B, T, V]` for inputs x `[B, T, D]`, starting from a zero state."""
        y, _ = self.rnn.forward(x)
        return self.out.forward(y)

    def loss_and_grads(
        self, x: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None
    ) -> tuple[float, dict[str, np.ndarray]]:
        """Forward, loss and full backward pass.

        Args:
            x: `[B, T, D]` inputs.
            targets: `[B, T]` integer classes in [0, V).
            mask: `[B, T]` bool / 0-1 weights of the steps that count, or None for all.

        Returns:
            ``(L, grads)``: the mean cross-entropy and ∂L/∂params (the model's ``grads`` dict, refilled).
        """
        logits = self.forward(x)
        loss, dlogits = softmax_cross_entropy(logits, targets, mask)
        self.rnn.backward(self.out.backward(dlogits))
        return loss, self.grads

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most likely class per step: `[B, T, D]` -> `[B, T]` integers."""
        return self.forward(x).argmax(axis=-1)
