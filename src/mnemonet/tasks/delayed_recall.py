"""Delayed recall (Haviv, Rivkind & Barak, ICML 2019): see an image once, report its class when triggered.

Each step's input is an image-sized vector plus one trigger bit. At step ``ts`` a digit image is shown
with the trigger off; at ``ta`` the trigger turns on while the image channels carry noise; every other
step is noise with the trigger off. The network must output a null class everywhere except ``ta``,
where it names the digit. The answer step's loss weight is ``Tmax - 1`` against 1 for each null step,
as in the authors' code (DoronHaviv/MemoryRNN), so the rare answer counts as much as all null steps.
:meth:`DelayedRecallTask.sample_at_delay` and :func:`evaluate_delays` measure accuracy at fixed
delays far beyond the trained range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mnemonet._checks import check_choice, check_positive
from mnemonet.tasks.base import Batch, Task
from mnemonet.tasks.data import SPLITS, check_split, load_images
from mnemonet.tasks.scoring import check_logits, masked_accuracy, weighted_cross_entropy

NULL_CLASS = 0  # the null output; digit d is class d + 1 (as in the authors' code)


class DelayedRecallTask(Task):
    """The delayed-recall task of Haviv et al. (2019), Fig. 1A.

    One sequence (``T = t_max`` steps, shown 0-based; ``~N`` is Gaussian noise with the training
    images' pixel mean and standard deviation, on the image channels only)::

        step t        0     1    ...   ts    ...    ta     ...  T-1
        x[:, :D]     ~N    ~N          img           ~N          ~N     image channels (D = H*W)
        x[:, D]       0     0     0     0     0      1      0     0     trigger (never noisy)
        target        0     0     0     0     0    d + 1    0     0     0 = null class, d = digit
        weight        1     1     1     1     1   Tmax-1    1     1     (score="answer": 1 at ta only)

    ``ts`` is uniform on ``[0, window - 1 - min_gap]`` and ``ta`` uniform on ``[ts + min_gap, window - 1]``
    (the authors' sampling), so ``ta - ts >= min_gap``. Steps at or after ``window`` (below ``t_max``
    only while a delay curriculum is growing it) are noise with target null and weight 0.

    Args:
        num_classes: digits in play, the first ``num_classes`` (0 .. num_classes-1); a vocabulary
            curriculum grows it.
        max_classes: the most digits ever in play; ``output_size = max_classes + 1`` (null is index 0).
        t_max: Tmax, the sequence length; also sets the answer weight ``Tmax - 1``.
        min_gap: smallest ``ta - ts`` (default 5: the paper's ``ta - ts > 4``).
        window: ts and ta fall in ``[0, window)`` and only those steps are scored; None means ``t_max``.
        noise_scale: multiplies the noise standard deviation (1 = the images' pixel std; 0 = no noise).
        score: ``"all"`` (null steps weight 1, answer ``answer_weight``) or ``"answer"`` (ta only).
        answer_weight: weight of the answer step under ``score="all"``; None means ``t_max - 1``.
        source: ``"digits"`` (scikit-learn 8x8, default) or ``"mnist"`` (needs ``mnist_path``).
        mnist_path: local MNIST folder of IDX files or ``.npz`` file.
        split_seed: seed of the fixed train/valid/test split of the digits.

    Example:
        >>> task = DelayedRecallTask(num_classes=3)
        >>> batch = task.sample(4, torch.Generator().manual_seed(0))
        >>> tuple(batch.x.shape), tuple(batch.target.shape), task.output_size
        ((4, 20, 65), (4, 20), 11)
    """

    name = "delayed_recall"
    kind = "classification"
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(
        self,
        num_classes: int = 10,
        max_classes: int = 10,
        t_max: int = 20,
        min_gap: int = 5,
        window: int | None = None,
        noise_scale: float = 1.0,
        score: str = "all",
        answer_weight: float | None = None,
        source: str = "digits",
        mnist_path: str | Path | None = None,
        split_seed: int = 0,
    ) -> None:
        check_positive(max_classes, "max_classes")
        if max_classes > 10:
            raise ValueError(f"max_classes: expected an integer in [1, 10] (digit classes), got {max_classes}")
        check_positive(t_max, "t_max")
        check_positive(min_gap, "min_gap")
        if min_gap > t_max - 1:
            raise ValueError(
                f"min_gap: ta - ts >= {min_gap} is impossible with t_max={t_max} (steps 0..{t_max - 1}); "
                f"expected min_gap <= t_max - 1 = {t_max - 1}"
            )
        check_choice(score, "score", ("all", "answer"))
        if not noise_scale >= 0:
            raise ValueError(f"noise_scale: expected a number >= 0, got {noise_scale}")
        if answer_weight is not None and not answer_weight > 0:
            raise ValueError(f"answer_weight: expected a number > 0, got {answer_weight}")
        self.max_classes = max_classes
        self.t_max = t_max
        self.min_gap = min_gap
        self.noise_scale = float(noise_scale)
        self.score = score
        self.answer_weight = float(t_max - 1 if answer_weight is None else answer_weight)
        self.source = source
        self._data = load_images(source, mnist_path, split_seed)
        height, width = self._data["train"].images.shape[1:]
        self.image_size = height * width  # D
        self.input_size = self.image_size + 1
        self.output_size = max_classes + 1
        train_pixels = self._data["train"].images
        self.noise_mean = float(train_pixels.mean())
        self.noise_std = float(train_pixels.std())
        self._by_class = {split: self._index_by_class(split) for split in SPLITS}
        self.num_classes = num_classes
        self.window = t_max if window is None else window

    # -- knobs a curriculum turns ----------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Digits in play: the first ``num_classes``."""
        return self._num_classes

    @num_classes.setter
    def num_classes(self, value: int) -> None:
        check_positive(value, "num_classes")
        if value > self.max_classes:
            raise ValueError(f"num_classes: expected an integer in [1, {self.max_classes}] (max_classes), got {value}")
        self._num_classes = value

    @property
    def window(self) -> int:
        """Steps ``[0, window)`` hold ts and ta and are scored."""
        return self._window

    @window.setter
    def window(self, value: int) -> None:
        check_positive(value, "window")
        if not self.min_gap + 1 <= value <= self.t_max:
            raise ValueError(
                f"window: expected an integer in [{self.min_gap + 1}, {self.t_max}] (min_gap + 1 .. t_max), got {value}"
            )
        self._window = value

    def state_dict(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "window": self.window}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_classes = int(state["num_classes"])
        self.window = int(state["window"])

    # -- sampling ----------------------------------------------------------------------------------

    def _index_by_class(self, split: str) -> tuple[Tensor, Tensor, Tensor]:
        """Image indices sorted by label, with each label's count and first position."""
        labels = self._data[split].labels
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=10)
        starts = torch.cumsum(counts, 0) - counts
        return order, counts, starts

    def _draw_images(self, classes: Tensor, split: str, generator: torch.Generator) -> Tensor:
        """A random image of each requested class: `[B]` -> `[B, D]`."""
        order, counts, starts = self._by_class[split]
        empty = [c for c in range(self.num_classes) if counts[c] == 0]
        if empty:
            raise ValueError(f"split: {split!r} has no images of classes {empty}")
        u = torch.rand(classes.shape[0], generator=generator)
        pick = starts[classes] + (u * counts[classes]).long().clamp_max(counts[classes] - 1)
        images = self._data[split].images[order[pick]]  # (B, H, W)
        return images.reshape(classes.shape[0], -1)  # (B, D)

    def _build(
        self, images: Tensor, classes: Tensor, ts: Tensor, ta: Tensor, T: int, window: int, generator: torch.Generator
    ) -> Batch:
        B, D = images.shape
        rows = torch.arange(B)
        std = self.noise_std * self.noise_scale
        x = torch.zeros(B, T, D + 1)
        x[:, :, :D] = self.noise_mean + std * torch.randn(B, T, D, generator=generator)
        x[rows, ts, :D] = images  # the image at ts, trigger off
        x[rows, ta, D] = 1.0  # the trigger at ta; image channels stay noise
        target = torch.full((B, T), NULL_CLASS, dtype=torch.int64)
        target[rows, ta] = classes + 1
        t = torch.arange(T)[None]  # (1, T)
        answer = t == ta[:, None]  # (B, T)
        null_mask = (t < window) & ~answer  # (B, T)
        weight = answer.float() * (self.answer_weight if self.score == "all" else 1.0)
        if self.score == "all":
            weight = weight + null_mask.float()
        info = {"labels": classes, "ts": ts, "ta": ta, "null_mask": null_mask}
        return Batch(x, target, weight, None, info)

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        """Draw ``batch_size`` trials.

        Classes are uniform over the first ``num_classes`` digits; the image is uniform among that
        digit's images in ``split``.

        Returns:
            Batch with x `[B, t_max, D + 1]`, target `[B, t_max]`, weight `[B, t_max]`, and info
            ``labels`` `[B]` (the digit), ``ts`` `[B]`, ``ta`` `[B]` (0-based steps) and ``null_mask``
            `[B, t_max]` (null steps inside the window).
        """
        split = check_split(split)
        check_positive(batch_size, "batch_size")
        B, window = batch_size, self.window
        classes = torch.randint(0, self.num_classes, (B,), generator=generator)
        images = self._draw_images(classes, split, generator)
        ts = (torch.rand(B, generator=generator) * (window - self.min_gap)).long()  # [0, window-1-gap]
        span = window - self.min_gap - ts  # choices for ta, >= 1
        ta = ts + self.min_gap + (torch.rand(B, generator=generator) * span).long()
        return self._build(images, classes, ts, ta, self.t_max, window, generator)

    def sample_at_delay(
        self, batch_size: int, delay: int, generator: torch.Generator, split: str = "test", ts: int = 0
    ) -> Batch:
        """Trials with one fixed delay ``ta - ts = delay``, which may lie far beyond ``t_max``.

        The sequence has ``T = max(t_max, ts + delay + 1)`` steps, all scored as in :meth:`sample`.

        Args:
            batch_size: B.
            delay: ta - ts, at least 1.
            generator: source of all randomness.
            split: image split (test by default).
            ts: the step at which the image is shown.
        """
        split = check_split(split)
        check_positive(batch_size, "batch_size")
        check_positive(delay, "delay")
        check_positive(ts, "ts", allow_zero=True)
        T = max(self.t_max, ts + delay + 1)
        classes = torch.randint(0, self.num_classes, (batch_size,), generator=generator)
        images = self._draw_images(classes, split, generator)
        ts_t = torch.full((batch_size,), ts, dtype=torch.int64)
        return self._build(images, classes, ts_t, ts_t + delay, T, T, generator)

    def evaluate_delays(
        self,
        model_fn: Callable[[Tensor], Any],
        delays: Iterable[int],
        n: int,
        generator: torch.Generator,
        **kwargs: Any,
    ) -> dict[int, float]:
        """Accuracy at each fixed delay: :func:`evaluate_delays` on this task (same keyword options)."""
        return evaluate_delays(model_fn, self, delays, n, generator, **kwargs)

    # -- scoring -----------------------------------------------------------------------------------

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """Weighted cross-entropy: ``Σ w_t CE_t / Σ w_t`` with w = Tmax-1 at ta and 1 on null steps."""
        check_logits(logits, batch.x, self.output_size)
        return weighted_cross_entropy(logits, batch.target, batch.weight)

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """``accuracy``: argmax at ta equals the digit's class; ``null_accuracy``: argmax is null on the
        null steps inside the window."""
        check_logits(logits, batch.x, self.output_size)
        B = logits.shape[0]
        ta = batch.info["ta"].to(logits.device)
        answer_logits = logits[torch.arange(B, device=logits.device), ta]  # (B, C)
        answer_target = batch.target.to(logits.device)[torch.arange(B, device=logits.device), ta]  # (B,)
        accuracy = float((answer_logits.argmax(-1) == answer_target).float().mean())
        null_target = torch.full_like(batch.target, NULL_CLASS)
        null_accuracy = masked_accuracy(logits, null_target, batch.info["null_mask"])
        return {"accuracy": accuracy, "null_accuracy": null_accuracy}


def evaluate_delays(
    model_fn: Callable[[Tensor], Any],
    task: DelayedRecallTask,
    delays: Iterable[int],
    n: int,
    generator: torch.Generator,
    split: str = "test",
    batch_size: int = 256,
    ts: int = 0,
    device: torch.device | str | None = None,
) -> dict[int, float]:
    """Accuracy at ta for each fixed delay: the accuracy-vs-delay curve beyond the trained range.

    Args:
        model_fn: maps x `[B, T, D + 1]` to logits `[B, T, output_size]` (a model returning
            ``(logits, state)`` works too).
        task: the delayed-recall task.
        delays: the delays ``ta - ts`` to test.
        n: trials per delay.
        generator: source of all randomness.
        split: image split.
        batch_size: trials per forward pass.
        ts: the step at which the image is shown.
        device: where to run ``model_fn`` (batches are built on the CPU); None keeps them there.

    Returns:
        ``{delay: accuracy}``.
    """
    check_positive(n, "n")
    check_positive(batch_size, "batch_size")
    curve = {}
    with torch.no_grad():
        for delay in delays:
            hits = 0
            done = 0
            while done < n:
                b = min(batch_size, n - done)
                batch = task.sample_at_delay(b, int(delay), generator, split=split, ts=ts)
                if device is not None:
                    batch = batch.to(device)
                out = model_fn(batch.x)
                logits = out[0] if isinstance(out, tuple) else out
                hits += round(task.metrics(logits, batch)["accuracy"] * b)
                done += b
            curve[int(delay)] = hits / n
    return curve
