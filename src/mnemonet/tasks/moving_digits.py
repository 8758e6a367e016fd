"""Moving digits: predict the next frame of a video of digits bouncing inside a square canvas.

The video-prediction task of BRIMs (Mittal et al. 2020, stochastic moving MNIST after Denton & Fergus
2018), offline: digits come from scikit-learn's bundled 8x8 digits (default; 1-2 digits on a 32x32 or
48x48 canvas) or from MNIST at a local path (28x28 digits on a 64x64 canvas, as the paper). Each digit
starts at a random position with a random integer velocity and bounces off the walls: deterministically
(the velocity component that hits a wall flips sign) or stochastically (after a bounce, the digit takes
a new random speed away from the wall and a new random speed along it, the stochastic moving-MNIST
protocol). Overlapping digits combine by the pixel-wise maximum.

The model sees the first ``observed`` frames (teacher forcing) and then runs free, reading its own
previous prediction; a flag channel tells it which (see
:class:`~mnemonet.models.frames.FramePredictor`). The loss is the per-pixel binary cross-entropy of
the next frame; metrics report it and the mean squared error on the rolled-out frames, per predicted
step.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mnemonet._checks import check_positive
from mnemonet.tasks.base import Batch, Task
from mnemonet.tasks.bits import check_range
from mnemonet.tasks.data import check_split, load_images
from mnemonet.tasks.digits import resample
from mnemonet.tasks.scoring import bits_loss, check_logits, weighted_mean


def bounce(
    position: tuple[int, int],
    velocity: tuple[int, int],
    frames: int,
    limit: int,
    stochastic: bool = False,
    max_speed: int = 3,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Integer positions of one digit over ``frames`` frames, reflected at the walls ``0`` and ``limit``.

    Per axis: ``p' = p + v``; past a wall the position is mirrored back (``p' = -p'`` or
    ``p' = 2 limit - p'``) and ``v`` flips sign. With ``stochastic``, the velocity after a bounce is drawn
    anew: ``1..max_speed`` away from the wall on the bouncing axis and ``-max_speed..max_speed`` on the
    other.

    Args:
        position: (row, column) of the digit's top-left corner at frame 0, each in ``[0, limit]``.
        velocity: (row, column) pixels per frame, each of magnitude at most ``limit``.
        frames: F, the number of frames.
        limit: canvas side minus digit side (the largest top-left coordinate).
        stochastic: draw a new velocity after each bounce.
        max_speed: largest speed component drawn after a stochastic bounce.
        generator: source of the stochastic draws.

    Returns:
        `[F, 2]` int64 positions.

    Example:
        >>> bounce((0, 3), (0, 1), 4, limit=4).tolist()  # hits the right wall at frame 1, back at frame 2
        [[0, 3], [0, 4], [0, 3], [0, 2]]
    """
    check_positive(frames, "frames")
    if not all(0 <= p <= limit for p in position):
        raise ValueError(f"position: expected coordinates in [0, {limit}], got {position}")
    check_positive(limit, "limit")
    if not all(abs(v) <= limit for v in velocity):
        raise ValueError(f"velocity: expected components of magnitude <= {limit}, got {velocity}")
    p, v = list(position), list(velocity)
    out = torch.empty(frames, 2, dtype=torch.int64)
    out[0] = torch.tensor(p)
    for f in range(1, frames):
        hit = [False, False]
        for a in range(2):
            p[a] += v[a]
            if p[a] < 0:
                p[a], v[a], hit[a] = -p[a], -v[a], True
            elif p[a] > limit:
                p[a], v[a], hit[a] = 2 * limit - p[a], -v[a], True
        if stochastic and any(hit):
            speed = min(max_speed, limit)
            away = torch.randint(1, speed + 1, (2,), generator=generator).tolist()
            along = torch.randint(-speed, speed + 1, (2,), generator=generator).tolist()
            for a in range(2):  # v[a] already points away from the wall it hit
                v[a] = away[a] * (1 if v[a] > 0 else -1) if hit[a] else along[a]
        out[f] = torch.tensor(p)
    return out


def render(digits: Tensor, positions: Tensor, canvas: int) -> Tensor:
    """Paste digits at their top-left positions on a black canvas (overlaps: pixel-wise maximum).

    Args:
        digits: `[n, s, s]` digit images in [0, 1].
        positions: `[F, n, 2]` int64 top-left (row, column) of each digit in each frame.
        canvas: C, the canvas side.

    Returns:
        `[F, C, C]` frames.
    """
    F_, n = positions.shape[0], positions.shape[1]
    s = digits.shape[-1]
    frames = torch.zeros(F_, canvas, canvas)
    for f in range(F_):
        for i in range(n):
            r, c = int(positions[f, i, 0]), int(positions[f, i, 1])
            patch = frames[f, r : r + s, c : c + s]
            torch.maximum(patch, digits[i], out=patch)
    return frames


class MovingDigitsTask(Task):
    """Next-frame prediction of bouncing digits, observed for ``observed`` frames, then free-running.

    Frames ``f_0 .. f_{F-1}`` (each ``C x C`` pixels, flattened to P = C²) give T = F - 1 steps; step t
    predicts ``f_{t+1}``. Channel P of x is the "observed" flag: 1 while the model is given the true frame
    (teacher forcing), 0 once it must feed back its own prediction. With k = ``observed``::

        step          0     1    ...   k-1     k      ...   F-2
        x[:, :P]      f_0   f_1  ...   f_k-1   0      ...   0        (model reads its own prediction)
        x[:, P] flag  1     1    ...   1       0      ...   0
        target        f_1   f_2  ...   f_k     f_k+1  ...   f_F-1
        weight        1     1    ...   1       1      ...   1        (0 before k-1 if score_observed=False)
        rollout step                   1       2      ...   F-k

    Args:
        canvas: C, the canvas side (32 or 48 with the bundled digits, 64 with MNIST).
        num_digits: digits per video, an int or a (lo, hi) range drawn per video.
        frames: F, frames per video (at least ``observed + 1``).
        observed: k, frames given before free running (at least 1).
        digit_size: side the digits are resampled to; None keeps the source's (8 or 28).
        max_speed: largest velocity component in pixels per frame (initial draws and stochastic bounces).
        stochastic: new random velocity after every bounce (stochastic moving MNIST); else reflections.
        score_observed: also score the predictions made while observing (steps before k - 1).
        source: ``"digits"`` (scikit-learn 8x8, default) or ``"mnist"`` (needs ``mnist_path``).
        mnist_path: local MNIST folder of IDX files or ``.npz`` file.
        split_seed: seed of the fixed train/valid/test split of the digits.

    Example:
        >>> task = MovingDigitsTask(canvas=32, num_digits=1, frames=6, observed=3)
        >>> batch = task.sample(2, torch.Generator().manual_seed(0))
        >>> tuple(batch.x.shape), tuple(batch.target.shape), batch.x[0, :, -1].tolist()
        ((2, 5, 1025), (2, 5, 1024), [1.0, 1.0, 1.0, 0.0, 0.0])
    """

    name = "moving_digits"
    kind = "bits"
    primary_metric = "rollout_bce"
    higher_is_better = False

    def __init__(
        self,
        canvas: int = 32,
        num_digits: int | tuple[int, int] = (1, 2),
        frames: int = 20,
        observed: int = 10,
        digit_size: int | None = None,
        max_speed: int = 3,
        stochastic: bool = False,
        score_observed: bool = True,
        source: str = "digits",
        mnist_path: str | Path | None = None,
        split_seed: int = 0,
    ) -> None:
        check_positive(canvas, "canvas")
        check_positive(observed, "observed")
        check_positive(max_speed, "max_speed")
        if isinstance(num_digits, int) and not isinstance(num_digits, bool):
            num_digits = (num_digits, num_digits)
        self.num_digits = check_range(tuple(num_digits) if isinstance(num_digits, list) else num_digits, "num_digits")
        if not isinstance(frames, int) or frames < observed + 1:
            raise ValueError(f"frames: expected an integer >= observed + 1 = {observed + 1}, got {frames!r}")
        self._data = load_images(source, mnist_path, split_seed)
        native = int(self._data["train"].images.shape[1])
        self.digit_size = native if digit_size is None else digit_size
        check_positive(self.digit_size, "digit_size")
        if self.digit_size >= canvas:
            raise ValueError(f"digit_size: expected less than canvas={canvas} (room to move), got {self.digit_size}")
        self.canvas = canvas
        self.frames = frames
        self.observed = observed
        self.max_speed = max_speed
        self.stochastic = bool(stochastic)
        self.score_observed = bool(score_observed)
        self.source = source
        self.limit = canvas - self.digit_size
        self.input_size = canvas * canvas + 1
        self.output_size = canvas * canvas

    @property
    def rollout_steps(self) -> int:
        """F - k: predicted frames after the last observed one."""
        return self.frames - self.observed

    def video(self, generator: torch.Generator, split: str = "train") -> tuple[Tensor, Tensor, Tensor]:
        """One video: frames `[F, C, C]`, top-left positions `[F, n, 2]` and labels `[n]` of its n digits."""
        data = self._data[check_split(split)]
        n = int(torch.randint(self.num_digits[0], self.num_digits[1] + 1, (1,), generator=generator))
        idx = torch.randint(0, data.labels.shape[0], (n,), generator=generator)
        digits = resample(data.images[idx], self.digit_size)  # (n, s, s)
        speed = min(self.max_speed, self.limit)
        paths = []
        for _ in range(n):
            start = torch.randint(0, self.limit + 1, (2,), generator=generator).tolist()
            velocity = torch.randint(-speed, speed + 1, (2,), generator=generator).tolist()
            paths.append(bounce(start, velocity, self.frames, self.limit, self.stochastic, speed, generator))
        positions = torch.stack(paths, dim=1)  # (F, n, 2)
        return render(digits.clamp(0, 1), positions, self.canvas), positions, data.labels[idx]

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        """Draw ``batch_size`` videos.

        Returns:
            Batch with x `[B, F-1, P+1]`, target `[B, F-1, P]` next frames, weight `[B, F-1]`, and info
            ``frames`` `[B, F, C, C]`, ``positions`` `[B, F, n_max, 2]` digit centres scaled to [0, 1]
            (slots sorted by digit class; absent digits are -1), ``labels`` `[B, n_max]` (-1 if absent).
        """
        split = check_split(split)
        check_positive(batch_size, "batch_size")
        Fr, C, k, n_max = self.frames, self.canvas, self.observed, self.num_digits[1]
        videos = torch.zeros(batch_size, Fr, C, C)
        centres = torch.full((batch_size, Fr, n_max, 2), -1.0)
        labels = torch.full((batch_size, n_max), -1, dtype=torch.int64)
        for b in range(batch_size):
            frames, positions, digit_labels = self.video(generator, split)
            order = torch.argsort(digit_labels, stable=True)  # a slot order a linear probe can tell apart
            n = len(order)
            videos[b] = frames
            centres[b, :, :n] = (positions[:, order].float() + self.digit_size / 2) / C
            labels[b, :n] = digit_labels[order]
        flat = videos.reshape(batch_size, Fr, C * C)  # (B, F, P)
        T = Fr - 1
        x = torch.zeros(batch_size, T, C * C + 1)
        x[:, :k, : C * C] = flat[:, :k]
        x[:, :k, C * C] = 1.0  # observed flag
        target = flat[:, 1:].clone()  # (B, T, P)
        weight = torch.ones(batch_size, T)
        if not self.score_observed:
            weight[:, : k - 1] = 0.0
        return Batch(x, target, weight, None, {"frames": videos, "positions": centres, "labels": labels})

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """Mean per-pixel binary cross-entropy of the next frame over the scored steps."""
        check_logits(logits, batch.x, self.output_size)
        return bits_loss(logits, batch.target, batch.weight)

    def step_metrics(self, logits: Tensor, batch: Batch) -> dict[str, Tensor]:
        """Per rollout step j = 1 .. F-k (frame ``f_{k-1+j}``): mean per-pixel ``bce`` and ``mse``, each `[F-k]`."""
        check_logits(logits, batch.x, self.output_size)
        k = self.observed
        roll = logits[:, k - 1 :]  # (B, F-k, P)
        target = batch.target[:, k - 1 :].to(roll)
        bce = F.binary_cross_entropy_with_logits(roll, target, reduction="none").mean(dim=(0, 2))  # (F-k,)
        mse = (torch.sigmoid(roll) - target).pow(2).mean(dim=(0, 2))  # (F-k,)
        return {"bce": bce, "mse": mse}

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """``bce`` over scored steps; ``rollout_bce`` / ``rollout_mse`` over the F-k predicted frames, and
        ``rollout_bce_j`` / ``rollout_mse_j`` for each predicted step j = 1 .. F-k."""
        check_logits(logits, batch.x, self.output_size)
        logits = logits.detach()
        per_bit = F.binary_cross_entropy_with_logits(logits, batch.target.to(logits), reduction="none")
        out: dict[str, float] = {"bce": float(weighted_mean(per_bit.mean(-1), batch.weight.to(logits)))}
        steps = self.step_metrics(logits, batch)
        out["rollout_bce"] = float(steps["bce"].mean())
        out["rollout_mse"] = float(steps["mse"].mean())
        for j in range(self.rollout_steps):
            out[f"rollout_bce_{j + 1}"] = float(steps["bce"][j])
            out[f"rollout_mse_{j + 1}"] = float(steps["mse"][j])
        return out
