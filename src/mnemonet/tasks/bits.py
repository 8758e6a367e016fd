"""Bit-sequence memory tasks in the style of the NTM and DNC papers: copy, repeat copy, associative recall.

Sequences of random binary vectors are generated on the fly from the caller's generator. Each task
scores only its answer phase: the loss is binary cross-entropy with logits on answer steps, and the
metrics count wrong bits per sequence there (a logit above 0 predicts 1) and the share of sequences
with no wrong bit. Training (``"train"``, ``"valid"``) and generalisation (``"test"``) draw their
lengths from separate ranges; sequences of different lengths in one batch are padded at the end and
carry their ``lengths``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mnemonet._checks import check_positive
from mnemonet.tasks.base import Batch, Task, pad_sequences
from mnemonet.tasks.data import check_split
from mnemonet.tasks.scoring import bit_errors, bits_loss, check_logits


def check_range(value: object, name: str, minimum: int = 1) -> tuple[int, int]:
    """Raise a ValueError unless ``value`` is a pair of integers ``minimum <= lo <= hi``."""
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and minimum <= value[0] <= value[1]
    )
    if not ok:
        raise ValueError(f"{name}: expected a pair (lo, hi) of integers with {minimum} <= lo <= hi, got {value!r}")
    return int(value[0]), int(value[1])


def draw_ints(low: int, high: int, n: int, generator: torch.Generator) -> Tensor:
    """`[n]` integers uniform on ``[low, high]`` (both included)."""
    return torch.randint(low, high + 1, (n,), generator=generator)


def random_bits(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Independent fair bits as float 0/1 of the given shape."""
    return (torch.rand(shape, generator=generator) < 0.5).float()


class BitTask(Task):
    """Shared scoring and length ranges of the bit tasks.

    Subclasses set ``input_size`` / ``output_size`` and implement ``_sequence(length, generator)``
    returning one sequence's ``(x [T, input_size], target [T, output_size], weight [T])``.

    Args:
        length_range: (lo, hi) lengths for ``"train"`` and ``"valid"``; a length curriculum grows hi.
        test_length_range: (lo, hi) lengths for ``"test"`` (generalisation).
        minimum: the smallest length the task allows.
    """

    kind = "bits"
    primary_metric = "bit_errors"
    higher_is_better = False

    def __init__(self, length_range: tuple[int, int], test_length_range: tuple[int, int], minimum: int = 1) -> None:
        self._minimum = minimum
        self.length_range = length_range
        self.test_length_range = check_range(test_length_range, "test_length_range", minimum)

    @property
    def length_range(self) -> tuple[int, int]:
        """(lo, hi) lengths of training and validation sequences."""
        return self._length_range

    @length_range.setter
    def length_range(self, value: tuple[int, int]) -> None:
        self._length_range = check_range(value, "length_range", self._minimum)

    def ranges(self, split: str) -> dict[str, tuple[int, int]]:
        """The ranges ``sample`` draws from for ``split``."""
        return {"length": self.test_length_range if split == "test" else self.length_range}

    def _sequence(self, generator: torch.Generator, split: str, **sizes: int) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        """Draw ``batch_size`` sequences, each of its own length.

        Returns:
            Batch with x `[B, T, input_size]`, target `[B, T, output_size]` bits, weight `[B, T]`
            (1 on answer steps), lengths `[B]` (None when all equal), and info ``lengths`` `[B]` plus
            one entry per drawn size (e.g. ``length``).
        """
        split = check_split(split)
        check_positive(batch_size, "batch_size")
        drawn = {key: draw_ints(lo, hi, batch_size, generator) for key, (lo, hi) in self.ranges(split).items()}
        parts = [
            self._sequence(generator, split, **{key: int(v[b]) for key, v in drawn.items()}) for b in range(batch_size)
        ]
        batch = pad_sequences(parts)
        lengths = torch.tensor([x.shape[0] for x, _, _ in parts], dtype=torch.int64)
        return batch._replace(info={"lengths": lengths, **drawn})

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """Mean binary cross-entropy with logits over the answer steps' bits."""
        check_logits(logits, batch.x, self.output_size)
        return bits_loss(logits, batch.target, batch.weight)

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """``bit_errors``: mean wrong bits per sequence in the answer phase; ``sequence_accuracy``: share
        of sequences without a wrong bit; ``bit_error_rate``: wrong bits / answer bits."""
        check_logits(logits, batch.x, self.output_size)
        errors = bit_errors(logits, batch.target, batch.weight).float()  # (B,)
        scored_bits = float((batch.weight > 0).sum()) * self.output_size
        return {
            "bit_errors": float(errors.mean()),
            "sequence_accuracy": float((errors == 0).float().mean()),
            "bit_error_rate": float(errors.sum()) / max(scored_bits, 1.0),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"length_range": list(self.length_range)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.length_range = tuple(state["length_range"])


class CopyTask(BitTask):
    """Copy (Graves et al. 2014): read L random bit vectors, then write them back after a delimiter.

    One sequence of length ``L`` (``T = 2L + 1``; W = ``bits``)::

        step            0 ... L-1     L       L+1 ... 2L
        x[:, :W]        b_0 ... b_L-1  0        0  ...  0
        x[:, W] delim   0  ...  0      1        0  ...  0
        target          0  ...  0      0       b_0 ... b_L-1
        weight          0  ...  0      0        1  ...  1

    Args:
        bits: W, the width of each vector.
        length_range: (lo, hi) of L for training and validation.
        test_length_range: (lo, hi) of L for the generalisation split ``"test"``.

    Example:
        >>> task = CopyTask(bits=4, length_range=(3, 3))
        >>> batch = task.sample(2, torch.Generator().manual_seed(0))
        >>> tuple(batch.x.shape), tuple(batch.target.shape), batch.weight[0].tolist()
        ((2, 7, 5), (2, 7, 4), [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    """

    name = "copy"

    def __init__(
        self, bits: int = 8, length_range: tuple[int, int] = (1, 20), test_length_range: tuple[int, int] = (21, 40)
    ) -> None:
        check_positive(bits, "bits")
        self.bits = bits
        self.input_size = bits + 1
        self.output_size = bits
        super().__init__(length_range, test_length_range)

    def _sequence(self, generator: torch.Generator, split: str, length: int) -> tuple[Tensor, Tensor, Tensor]:
        L, W = length, self.bits
        seq = random_bits((L, W), generator)
        x = torch.zeros(2 * L + 1, W + 1)
        x[:L, :W] = seq
        x[L, W] = 1.0  # delimiter
        target = torch.zeros(2 * L + 1, W)
        target[L + 1 :] = seq
        weight = torch.zeros(2 * L + 1)
        weight[L + 1 :] = 1.0
        return x, target, weight


class RepeatCopyTask(BitTask):
    """Repeat copy (Graves et al. 2014): copy the sequence R times, then raise an end marker.

    R is given on its own input channel at the delimiter step, divided by the largest training R
    (``repeat_range[1]``), so it is 1.0 at the top of the training range. One sequence
    (``T = L + 1 + R·L + 1``)::

        step             0 ... L-1     L          L+1 ... L+RL          L+RL+1
        x[:, :W]         b_0 ... b_L-1  0           0  ...  0              0
        x[:, W] delim    0  ...  0      1           0  ...  0              0
        x[:, W+1] reps   0  ...  0    R/Rmax        0  ...  0              0
        target[:, :W]    0  ...  0      0        b_0..b_L-1 (R times)      0
        target[:, W] end 0  ...  0      0           0  ...  0              1
        weight           0  ...  0      0           1  ...  1              1

    Args:
        bits: W.
        length_range, test_length_range: (lo, hi) of L for train/valid and for ``"test"``.
        repeat_range, test_repeat_range: (lo, hi) of R for train/valid and for ``"test"``.
    """

    name = "repeat_copy"

    def __init__(
        self,
        bits: int = 8,
        length_range: tuple[int, int] = (1, 10),
        repeat_range: tuple[int, int] = (1, 10),
        test_length_range: tuple[int, int] = (11, 20),
        test_repeat_range: tuple[int, int] = (11, 20),
    ) -> None:
        check_positive(bits, "bits")
        self.bits = bits
        self.input_size = bits + 2
        self.output_size = bits + 1
        self.repeat_range = check_range(repeat_range, "repeat_range")
        self.test_repeat_range = check_range(test_repeat_range, "test_repeat_range")
        super().__init__(length_range, test_length_range)

    def ranges(self, split: str) -> dict[str, tuple[int, int]]:
        test = split == "test"
        return {
            "length": self.test_length_range if test else self.length_range,
            "repeats": self.test_repeat_range if test else self.repeat_range,
        }

    def _sequence(
        self, generator: torch.Generator, split: str, length: int, repeats: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        L, R, W = length, repeats, self.bits
        T = L + 1 + R * L + 1
        seq = random_bits((L, W), generator)
        x = torch.zeros(T, W + 2)
        x[:L, :W] = seq
        x[L, W] = 1.0  # delimiter
        x[L, W + 1] = R / self.repeat_range[1]  # normalised repeat count
        target = torch.zeros(T, W + 1)
        target[L + 1 : L + 1 + R * L, :W] = seq.repeat(R, 1)  # (R*L, W)
        target[T - 1, W] = 1.0  # end marker
        weight = torch.zeros(T)
        weight[L + 1 :] = 1.0
        return x, target, weight


class AssociativeRecallTask(BitTask):
    """Associative recall (Graves et al. 2014): after a list of items, given one item, recall the next.

    Each item is ``item_len`` bit vectors preceded by an item delimiter; the query item is flanked by
    query delimiters; the answer is the item that followed the query in the list. With N items of
    k vectors (``T = N(k+1) + 2 + 2k``)::

        step              [item 1]      ...  [item N]     [query]            [answer]
        x[:, :W]          0 v v v            0 v v v      0 q q q 0          0 0 0
        x[:, W] item      1 0 0 0            1 0 0 0      0 0 0 0 0          0 0 0
        x[:, W+1] query   0 0 0 0            0 0 0 0      1 0 0 0 1          0 0 0
        target            0 ...                                              a a a   (item after q)
        weight            0 ...                                              1 1 1

    The "length" of this task is N, the number of items (at least 2); the query is uniform over the
    first N - 1 items.

    Args:
        bits: W, width of each vector.
        item_len: k, vectors per item.
        length_range, test_length_range: (lo, hi) of N for train/valid and for ``"test"``.
    """

    name = "associative_recall"

    def __init__(
        self,
        bits: int = 6,
        item_len: int = 3,
        length_range: tuple[int, int] = (2, 6),
        test_length_range: tuple[int, int] = (7, 12),
    ) -> None:
        check_positive(bits, "bits")
        check_positive(item_len, "item_len")
        self.bits = bits
        self.item_len = item_len
        self.input_size = bits + 2
        self.output_size = bits
        super().__init__(length_range, test_length_range, minimum=2)

    def _sequence(self, generator: torch.Generator, split: str, length: int) -> tuple[Tensor, Tensor, Tensor]:
        N, k, W = length, self.item_len, self.bits
        items = random_bits((N, k, W), generator)
        q = int(torch.randint(0, N - 1, (1,), generator=generator))
        T = N * (k + 1) + 2 + 2 * k
        x = torch.zeros(T, W + 2)
        blocks = x[: N * (k + 1)].view(N, k + 1, W + 2)  # (N, k+1, W+2), a view into x
        blocks[:, 0, W] = 1.0  # item delimiters
        blocks[:, 1:, :W] = items
        start = N * (k + 1)
        x[start, W + 1] = 1.0  # query delimiter
        x[start + 1 : start + 1 + k, :W] = items[q]
        x[start + 1 + k, W + 1] = 1.0  # query delimiter
        target = torch.zeros(T, W)
        target[T - k :] = items[q + 1]
        weight = torch.zeros(T)
        weight[T - k :] = 1.0
        return x, target, weight
