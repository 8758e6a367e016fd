"""A frame encoder / decoder around any recurrent core, for video prediction (moving digits).

:class:`FramePredictor` reads one flattened ``C x C`` frame per step plus an "observed" flag, encodes the
frame (an MLP or a small convolutional net), steps the core, and decodes the core's output into the
logits of the next frame. Where the flag is 0 it reads its own previous prediction (the sigmoid of its
last logits) instead of the input frame, so one forward pass does teacher forcing for the observed
frames and a free-running rollout after them (BRIMs' moving-MNIST setting, Mittal et al. 2020).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from mnemonet.models import state as st
from mnemonet.models.base import RecurrentModel
from mnemonet.models.recurrent import padding_mask
from mnemonet.models.registry import build, register

ENCODERS = ("mlp", "conv")


class FrameState(NamedTuple):
    """State of a :class:`FramePredictor`.

    Attributes:
        core: the core's state.
        frame: `[B, P]` the last predicted frame (pixel probabilities), read back when the flag is 0.
    """

    core: Any
    frame: Tensor


def layer_states(core_state: Any) -> list[Tensor]:
    """The hidden state of each layer of a core's state, each `[B, D_l]`.

    A state with an ``h`` field (LSTM, GRU, RIMs) is one layer; a tuple of such states (``Stacked``,
    BRIMs) is one layer per entry; any other state is one layer, flattened whole.
    """
    if hasattr(core_state, "h"):
        return [core_state.h.reshape(core_state.h.shape[0], -1)]
    if isinstance(core_state, (tuple, list)) and core_state and all(hasattr(s, "h") for s in core_state):
        return [s.h.reshape(s.h.shape[0], -1) for s in core_state]
    return [st.flatten(core_state)]


def _encoder(kind: str, side: int, embed_size: int, channels: int) -> nn.Module:
    if kind == "mlp":
        return nn.Sequential(nn.Linear(side * side, embed_size), nn.ReLU())
    q = side // 4
    return nn.Sequential(
        nn.Unflatten(1, (1, side, side)),  # (B, 1, C, C)
        nn.Conv2d(1, channels, 4, stride=2, padding=1),  # (B, ch, C/2, C/2)
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),  # (B, 2ch, C/4, C/4)
        nn.ReLU(),
        nn.Flatten(),  # (B, 2ch * (C/4)^2)
        nn.Linear(2 * channels * q * q, embed_size),
        nn.ReLU(),
    )


def _decoder(kind: str, side: int, hidden: int, channels: int) -> nn.Module:
    if kind == "mlp":
        return nn.Linear(hidden, side * side)
    q = side // 4
    return nn.Sequential(
        nn.Linear(hidden, 2 * channels * q * q),
        nn.ReLU(),
        nn.Unflatten(1, (2 * channels, q, q)),  # (B, 2ch, C/4, C/4)
        nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1),  # (B, ch, C/2, C/2)
        nn.ReLU(),
        nn.ConvTranspose2d(channels, 1, 4, stride=2, padding=1),  # (B, 1, C, C)
        nn.Flatten(),  # (B, P)
    )


@register("frame_predictor")
class FramePredictor(RecurrentModel):
    """Encoder -> recurrent core -> decoder, with the model's own prediction fed back where not observed.

    One step, with flag ``o_t = x_t[P]``::

        frame_in = o_t * x_t[:P] + (1 - o_t) * sigmoid(previous logits)
        y_t, core = core.step(encoder(frame_in), core)
        logits_t = decoder(y_t)                          # next frame, `[B, P]`

    Args:
        input_size: P + 1 (P = C² pixels of a square frame, plus the flag).
        output_size: P.
        core: name of the recurrent core for ``mnemonet.build`` (``"lstm"``, ``"rims"``, ``"brims"``, ...).
        encoder: ``"mlp"`` (one ReLU layer) or ``"conv"`` (two stride-2 convolutions, C divisible by 4);
            the decoder mirrors it.
        embed_size: size of the frame code fed to the core.
        channels: channels of the first convolution (``"conv"`` only).
        **core_kwargs: the core's own keywords (``hidden_size``, ``num_modules``, ...).

    Example:
        >>> net = FramePredictor(17, 16, core="lstm", embed_size=8, hidden_size=12)
        >>> logits, state = net(torch.zeros(2, 5, 17))
        >>> tuple(logits.shape), tuple(state.frame.shape)
        ((2, 5, 16), (2, 16))
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        core: str = "lstm",
        encoder: str = "mlp",
        embed_size: int = 64,
        channels: int = 16,
        **core_kwargs: Any,
    ) -> None:
        super().__init__()
        side = math.isqrt(output_size)
        if side * side != output_size or input_size != output_size + 1:
            raise ValueError(
                f"input_size: expected a square frame of P pixels plus a flag (input_size = P + 1, output_size = P "
                f"= C²), got input_size={input_size}, output_size={output_size}"
            )
        if encoder not in ENCODERS:
            raise ValueError(f"encoder: expected one of {list(ENCODERS)}, got {encoder!r}")
        if encoder == "conv" and side % 4:
            raise ValueError(f"encoder: 'conv' needs a frame side divisible by 4, got {side}")
        self.input_size = input_size
        self.output_size = output_size
        self.side = side
        self.encoder_kind = encoder
        self.encoder = _encoder(encoder, side, embed_size, channels)
        self.core = build(core, input_size=embed_size, **core_kwargs)
        self.decoder = _decoder(encoder, side, self.core.output_size, channels)

    def extra_repr(self) -> str:
        return f"side={self.side}, encoder={self.encoder_kind!r}"

    def initial_state(self, batch_size, device=None, dtype=None) -> FrameState:
        core = self.core.initial_state(batch_size, device, dtype)
        return FrameState(core, torch.zeros(batch_size, self.output_size, device=device, dtype=dtype))

    def step(self, x_t: Tensor, state: FrameState, t: int = 0, mask: Tensor | None = None):
        P = self.output_size
        flag = x_t[:, P:]  # (B, 1)
        frame_in = flag * x_t[:, :P] + (1 - flag) * state.frame  # (B, P)
        y, core = self.core.step(self.encoder(frame_in), state.core, t=t, mask=mask)
        logits = self.decoder(y)  # (B, P)
        new = FrameState(core, torch.sigmoid(logits))
        if mask is not None:
            new = st.tree_where(mask, new, state)
        return logits, new

    def _observed_prefix(self, x: Tensor) -> int:
        """Steps at the start whose flag is 1 in every sequence (run through the core in one call)."""
        flags = x[:, :, self.output_size]  # (B, T)
        observed = (flags == 1).all(dim=0)  # (T,)
        return int(observed.long().cumprod(0).sum())

    def _run(self, x, state, lengths, return_states):
        B, T, P = x.shape[0], x.shape[1], self.output_size
        k = self._observed_prefix(x) if lengths is None else 0
        logits_parts, states_parts = [], []
        if k:
            z = self.encoder(x[:, :k, :P].reshape(B * k, P)).reshape(B, k, -1)  # (B, k, E)
            y, core, core_states = self.core._run(z, state.core, None, return_states)
            logits = self.decoder(y.reshape(B * k, -1)).reshape(B, k, P)  # (B, k, P)
            probs = torch.sigmoid(logits)
            state = FrameState(core, probs[:, -1])
            logits_parts.append(logits)
            if return_states:
                states_parts.append(torch.cat([core_states, probs], dim=-1))  # (B, k, S)
        mask = padding_mask(lengths, T, x.device)
        for t in range(k, T):
            logits_t, state = self.step(x[:, t], state, t=t, mask=None if mask is None else mask[:, t])
            if mask is not None:
                logits_t = logits_t * mask[:, t, None]
            logits_parts.append(logits_t[:, None])
            if return_states:
                states_parts.append(self.flatten_state(state)[:, None])
        out = torch.cat(logits_parts, dim=1)  # (B, T, P)
        states = torch.cat(states_parts, dim=1) if return_states else None
        return out, state, states
