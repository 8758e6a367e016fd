"""Input encoders: a learned map from the task's raw input to the features a recurrent model reads.

Any model can sit behind an encoder (``model.encoder`` in a config, ``build(name, encoder=...)``):

- ``"none"``: the raw input (the default for every model but RIMs/BRIMs presets);
- ``"linear"``: ``e_t = x_t W + b``, an affine map `[D] -> [encoder_size]`;
- ``"embedding"``: ``e_t = E[x_t]`` for integer inputs (D = 1, values in [0, num_embeddings)), the
  ``nn.Embedding`` that the official RIMs code puts in front of the modules;
- ``"levels"``: ``e_t = E[round(clip(x_t, 0, 1) (L - 1))]`` for real inputs in [0, 1] (D = 1), an embedding
  of the input quantised to ``L = num_embeddings`` evenly spaced levels. With L = 2 this is the official
  RIMs code's sequential MNIST input (pixels rounded to 0/1, then embedded). Out-of-range inputs (e.g. noisy
  pixels) are clipped first, so every real input has a code.

Why RIMs need one: their input attention compares every module's query with the key of the input and with
the key of a null input, which is 0. A raw input of zeros (49 % of 8x8 digit pixels) also has key 0, so at
such steps every module ties with the null. Behind an encoder with a bias, or an embedding, a zero input has
its own nonzero code and cannot tie with the null.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnemonet._checks import check_choice, check_positive, check_tensor
from mnemonet.models.base import RecurrentModel

ENCODERS = ("none", "linear", "embedding", "levels")


def quantise(x: Tensor, levels: int) -> Tensor:
    """Index of the nearest of ``levels`` evenly spaced values in [0, 1] after clipping: ``round(clip(x, 0, 1) (L-1))``.

    Args:
        x: `[...]` real values.
        levels: L >= 2.

    Returns:
        `[...]` int64 indices in [0, L).
    """
    return torch.round(x.clamp(0.0, 1.0) * (levels - 1)).long()


class InputEncoder(nn.Module):
    """``"linear"``, ``"embedding"`` or ``"levels"`` map of every step's input: `[..., D]` -> `[..., encoder_size]`.

    Args:
        kind: ``"linear"``, ``"embedding"`` or ``"levels"``.
        input_size: D (must be 1 for ``"embedding"`` and ``"levels"``).
        encoder_size: size of the code.
        num_embeddings: vocabulary size of ``"embedding"`` (inputs are integers in [0, num_embeddings)), or
            number of levels (>= 2) of ``"levels"`` (inputs are reals, clipped to [0, 1]).
        dropout: dropout probability on the code in training (the official RIMs scripts use 0.5).
    """

    def __init__(
        self, kind: str, input_size: int, encoder_size: int, num_embeddings: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"encoder_dropout: expected a probability in [0, 1), got {dropout}")
        self.dropout = dropout
        check_choice(kind, "encoder", ENCODERS[1:])
        check_positive(input_size, "input_size")
        check_positive(encoder_size, "encoder_size")
        self.kind, self.input_size, self.output_size = kind, input_size, encoder_size
        if kind == "linear":
            self.map = nn.Linear(input_size, encoder_size)
        else:
            if input_size != 1:
                raise ValueError(
                    f"encoder: {kind!r} reads one number per step (input_size 1), got input_size={input_size}"
                )
            if num_embeddings is None:
                raise ValueError(f"num_embeddings: required by encoder={kind!r} (the number of symbols or levels)")
            check_positive(num_embeddings, "num_embeddings")
            if kind == "levels" and num_embeddings < 2:
                raise ValueError(f"num_embeddings: encoder='levels' needs at least 2 levels, got {num_embeddings}")
            self.map = nn.Embedding(num_embeddings, encoder_size)

    def extra_repr(self) -> str:
        return f"{self.kind!r}" + (f", dropout={self.dropout}" if self.dropout else "")

    def forward(self, x: Tensor) -> Tensor:
        """`[..., D]` -> `[..., encoder_size]`."""
        if self.kind == "linear":
            return F.dropout(self.map(x), self.dropout, self.training)
        if self.kind == "levels":
            index = quantise(x[..., 0], self.map.num_embeddings)  # (...)
            return F.dropout(self.map(index), self.dropout, self.training)  # (..., encoder_size)
        index = x[..., 0].round().long()  # (...)
        if not bool((index == x[..., 0]).all()) or bool((index < 0).any() | (index >= self.map.num_embeddings).any()):
            raise ValueError(f"x: encoder='embedding' expects integers in [0, {self.map.num_embeddings}) per step")
        return F.dropout(self.map(index), self.dropout, self.training)  # (..., encoder_size)


class Encoded(RecurrentModel):
    """``core`` reading ``encoder(x_t)`` at every step; the state is the core's.

    ``forward(x, state=None, lengths=None) -> (y, state)`` with x `[B, T, D]` and y the core's output.

    Args:
        core: any recurrent model whose input size is ``encoder.output_size``.
        encoder: an :class:`InputEncoder`.
    """

    def __init__(self, core: RecurrentModel, encoder: InputEncoder) -> None:
        super().__init__()
        if core.input_size != encoder.output_size:
            raise ValueError(
                f"encoder: its output size {encoder.output_size} must equal the core's input size {core.input_size}"
            )
        self.encoder = encoder
        self.core = core
        self.input_size = encoder.input_size
        self.output_size = core.output_size
        self.batch_first = core.batch_first

    def initial_state(self, batch_size, device=None, dtype=None):
        return self.core.initial_state(batch_size, device, dtype)

    def step(self, x_t: Tensor, state, t: int = 0, mask: Tensor | None = None):
        check_tensor(x_t, "x_t", ("B", self.input_size))
        return self.core.step(self.encoder(x_t), state, t=t, mask=mask)

    def _run(self, x, state, lengths, return_states):
        return self.core._run(self.encoder(x), state, lengths, return_states)  # x batch-first: (B, T, E)


def encoded(
    factory,
    encoder: str,
    input_size: int,
    encoder_size: int | None,
    num_embeddings: int | None,
    encoder_dropout: float = 0.0,
    **kwargs,
) -> RecurrentModel:
    """``factory(input_size=encoder_size, **kwargs)`` behind an encoder (or ``factory(input_size, ...)`` for "none").

    Args:
        factory: a model factory of :mod:`mnemonet.models.registry`.
        encoder: ``"none"``, ``"linear"``, ``"embedding"`` or ``"levels"``.
        input_size: D of the raw input.
        encoder_size: size of the code (required unless ``encoder="none"``).
        num_embeddings: vocabulary of ``"embedding"``, number of levels of ``"levels"``.
        encoder_dropout: dropout on the code in training.
    """
    check_choice(encoder, "encoder", ENCODERS)
    if encoder == "none":
        return factory(input_size=input_size, **kwargs)
    if encoder_size is None:
        raise ValueError(f"encoder_size: required by encoder={encoder!r} (the size of the code)")
    enc = InputEncoder(encoder, input_size, encoder_size, num_embeddings, encoder_dropout)
    return Encoded(factory(input_size=encoder_size, **kwargs), enc)


__all__ = ["ENCODERS", "Encoded", "InputEncoder", "encoded", "quantise"]
