"""Copy with a delay (Goyal et al. 2019, RIMs, section 4.2): remember a few symbols across a long blank gap.

A sequence of ``length`` symbols drawn uniformly from an alphabet of ``alphabet`` symbols is shown, then
``delay`` blank steps, then a marker; during the ``length`` steps after the marker the network must output
the symbols in order. Models are trained at one delay and tested at longer ones (``test_delay``): the paper
trains at 50 and tests at 200, where RIMs keep their accuracy and an LSTM does not, because modules that are
not selected by the blank input keep their state unchanged.

The sequence is drawn in :class:`CopyDelayTask`; the marker is the last of the d steps after the symbols,
as in the official ``copying_data`` (anirudh9119/RIMs), so d counts blanks plus marker. The input is one-hot
over the A + 2 tokens (``encoding="one_hot"``, D = A + 2) or the token id itself (``encoding="index"``,
D = 1, for an embedding encoder). Targets are symbol classes 0..A-1 (symbol s is class s - 1), so chance
accuracy is 1 / A.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mnemonet._checks import check_choice, check_positive
from mnemonet.tasks.base import Batch, Task
from mnemonet.tasks.data import check_split
from mnemonet.tasks.scoring import check_logits, masked_accuracy, weighted_cross_entropy

ENCODINGS = ("one_hot", "index")


class CopyDelayTask(Task):
    """The RIMs paper's copy task: ``length`` symbols, ``delay`` blanks ending in a marker, then recall.

    With token ids 0 = blank, 1..A = symbols, A + 1 = marker (L = ``length``, d = ``delay``)::

        step     0 ... L-1   L ... L+d-2   L+d-1    L+d ... 2L+d-1
        x        s_1 ... s_L   0 ...   0    marker    0  ...   0
        target   -       -     -       -      -      s_1 ...  s_L
        weight   0  ...  0     0  ...  0      0       1  ...   1

    Args:
        length: L, symbols to copy (10 in the paper).
        alphabet: A, number of distinct symbols (8 in the paper: tokens 1..8, marker 9).
        delay: d, steps between the last symbol and the first recall step for ``"train"`` and ``"valid"``.
        test_delay: d for ``"test"`` (None: ``delay``).
        encoding: ``"one_hot"`` (D = A + 2) or ``"index"`` (D = 1).

    Example:
        >>> task = CopyDelayTask(length=3, alphabet=4, delay=5, test_delay=10)
        >>> g = torch.Generator().manual_seed(0)
        >>> tuple(task.sample(2, g).x.shape), tuple(task.sample(2, g, split="test").x.shape)
        ((2, 11, 6), (2, 16, 6))
    """

    name = "copy_delay"
    kind = "classification"
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(
        self,
        length: int = 10,
        alphabet: int = 8,
        delay: int = 50,
        test_delay: int | None = None,
        encoding: str = "one_hot",
    ) -> None:
        check_positive(length, "length")
        check_positive(alphabet, "alphabet")
        check_positive(delay, "delay")
        test_delay = delay if test_delay is None else test_delay
        check_positive(test_delay, "test_delay")
        check_choice(encoding, "encoding", ENCODINGS)
        self.length, self.alphabet, self.delay, self.test_delay = length, alphabet, delay, test_delay
        self.encoding = encoding
        self.marker = alphabet + 1
        self.input_size = alphabet + 2 if encoding == "one_hot" else 1
        self.output_size = alphabet

    def seq_len(self, delay: int | None = None) -> int:
        """T = 2 L + d."""
        return 2 * self.length + (self.delay if delay is None else delay)

    def sample_at_delay(self, batch_size: int, generator: torch.Generator, delay: int) -> Batch:
        """A batch at ``delay``.

        Returns:
            Batch with x `[B, T, D]`, target `[B, T]` (symbol classes at the recall steps, 0 elsewhere),
            weight `[B, T]` (1 at the recall steps) and info ``tokens`` `[B, T]` (the input token ids).
        """
        check_positive(batch_size, "batch_size")
        check_positive(delay, "delay")
        L, T = self.length, self.seq_len(delay)
        symbols = torch.randint(1, self.alphabet + 1, (batch_size, L), generator=generator)  # (B, L)
        tokens = torch.zeros(batch_size, T, dtype=torch.int64)  # (B, T), 0 = blank
        tokens[:, :L] = symbols
        tokens[:, L + delay - 1] = self.marker
        target = torch.zeros(batch_size, T, dtype=torch.int64)
        target[:, T - L :] = symbols - 1
        weight = torch.zeros(batch_size, T)
        weight[:, T - L :] = 1.0
        one_hot = self.encoding == "one_hot"
        x = F.one_hot(tokens, self.alphabet + 2).float() if one_hot else tokens.unsqueeze(-1).float()  # (B, T, D)
        return Batch(x, target, weight, None, {"tokens": tokens})

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        """``"train"`` and ``"valid"`` at ``delay``, ``"test"`` at ``test_delay``."""
        split = check_split(split)
        return self.sample_at_delay(batch_size, generator, self.test_delay if split == "test" else self.delay)

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """Cross-entropy over the recall steps."""
        check_logits(logits, batch.x, self.output_size)
        return weighted_cross_entropy(logits, batch.target, batch.weight)

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """``accuracy``: share of recall steps whose argmax is the symbol (chance 1 / alphabet)."""
        check_logits(logits, batch.x, self.output_size)
        return {"accuracy": masked_accuracy(logits, batch.target, batch.weight > 0)}


__all__ = ["CopyDelayTask"]
