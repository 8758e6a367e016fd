"""A linear readout on top of any recurrent model: hidden outputs -> task logits at every step."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnemonet.models.base import RecurrentModel


class Readout(RecurrentModel):
    """``core`` followed by a linear map of its output at every step.

    ``forward(x, state=None, lengths=None) -> (logits [B, T, output_size], state)``; the state is the
    core's state, so the analysis sees the core's hidden state.

    Args:
        core: any recurrent model (``Recurrent``, ``Stacked``, ...).
        output_size: size of the readout (number of classes or bits).
        dropout: dropout probability on the core's output before the linear map, in training only (the
            official RIMs and BRIMs scripts drop 0.5 there, ``self.drop(output)`` before their decoder).

    Example:
        >>> import torch, mnemonet
        >>> net = Readout(mnemonet.build("gru", input_size=3, hidden_size=8), output_size=5)
        >>> tuple(net(torch.zeros(2, 4, 3))[0].shape)
        (2, 4, 5)
    """

    def __init__(self, core: RecurrentModel, output_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"readout_dropout: expected a probability in [0, 1), got {dropout}")
        self.core = core
        self.dropout = float(dropout)
        self.readout = nn.Linear(core.output_size, output_size)
        self.input_size = core.input_size
        self.output_size = output_size
        self.batch_first = core.batch_first

    def initial_state(self, batch_size, device=None, dtype=None):
        return self.core.initial_state(batch_size, device, dtype)

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}" if self.dropout else ""

    def step(self, x_t: Tensor, state, t: int = 0, mask: Tensor | None = None):
        y_t, state = self.core.step(x_t, state, t=t, mask=mask)
        return self.readout(F.dropout(y_t, self.dropout, self.training)), state

    def _run(self, x, state, lengths, return_states):
        y, state, states = self.core._run(x, state, lengths, return_states)
        return self.readout(F.dropout(y, self.dropout, self.training)), state, states


class Outputs(nn.Module):
    """Adapter for ``nn.Sequential``: keep only a recurrent model's outputs (Keras' ``return_sequences``).

    ``forward(x, lengths=None)`` returns `[B, T, H]` with ``return_sequences=True``, else the output
    at each sequence's last real step, `[B, H]`.

    Args:
        model: any recurrent model.
        return_sequences: all steps (True) or the last step only (False).
    """

    def __init__(self, model: RecurrentModel, return_sequences: bool = True) -> None:
        super().__init__()
        self.model = model
        self.return_sequences = return_sequences

    def extra_repr(self) -> str:
        return "" if self.return_sequences else "return_sequences=False"

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        y, _ = self.model(x, lengths=lengths)
        if self.return_sequences:
            return y
        if lengths is None:
            return y[:, -1] if self.model.batch_first else y[-1]
        last = torch.as_tensor(lengths, device=y.device).long() - 1
        y_bf = y if self.model.batch_first else y.transpose(0, 1)
        return y_bf[torch.arange(y_bf.shape[0], device=y.device), last]  # (B, H)
