"""Sequential and permuted digits: classify an image read one pixel (or one row) per step.

The image is unrolled into a sequence and the class is scored at the last step only. ``permute=True``
reorders the pixels by one fixed permutation drawn from ``perm_seed`` (permuted MNIST, as in
Cooijmans et al. 2017). Images can be resampled bilinearly to a larger resolution to test length
generalisation (train on 8x8 = 64 steps, test on 12x12 = 144 and 16x16 = 256), and Gaussian noise
can be added to test inputs. Images come from scikit-learn's digits by default, MNIST from a local
IDX folder or ``.npz`` file.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from mnemonet._checks import check_choice, check_positive
from mnemonet.tasks.base import Batch, Task
from mnemonet.tasks.data import check_split, load_images
from mnemonet.tasks.scoring import check_logits, masked_accuracy, weighted_cross_entropy

UPSAMPLINGS = ("bilinear", "nearest")


def resample(images: Tensor, resolution: int, mode: str = "bilinear") -> Tensor:
    """Resampling of square images: `[N, H, W]` -> `[N, r, r]` (unchanged when r = H = W).

    ``mode="nearest"`` copies pixels (no new grey levels: the RIMs paper's length-generalisation test),
    ``"bilinear"`` interpolates.
    """
    if images.shape[1] == resolution and images.shape[2] == resolution:
        return images
    if mode == "nearest":
        out = F.interpolate(images[:, None], size=(resolution, resolution), mode="nearest")
    else:
        out = F.interpolate(images[:, None], size=(resolution, resolution), mode="bilinear", align_corners=False)
    return out[:, 0]  # (N, r, r)


def pixel_permutation(num_pixels: int, seed: int) -> Tensor:
    """The fixed permutation of ``num_pixels`` pixel positions drawn from ``seed``: `[num_pixels]`."""
    return torch.randperm(num_pixels, generator=torch.Generator().manual_seed(seed))


class SequentialDigitsTask(Task):
    """Sequential / permuted digits, pixel by pixel or row by row.

    With an r x r image, pixels ``p`` in row-major order (after the permutation π when ``permute``),
    and class c::

        mode="pixel" (T = r*r, D = 1)            mode="row" (T = r, D = r)
        step     0      1    ...   T-1           step     0        1     ...   r-1
        x        p_π0   p_π1 ...   p_π(T-1)      x        row 0    row 1 ...   row r-1
        target   c      c    ...   c             target   c        c     ...   c
        weight   0      0    ...   1             weight   0        0     ...   1

    Args:
        mode: ``"pixel"`` or ``"row"``.
        permute: reorder pixels by a fixed permutation (drawn from ``perm_seed``, one per resolution).
        perm_seed: seed of the permutation.
        resolution: image side for ``"train"`` and ``"valid"``; None is the source's own (8 or 28).
        test_resolution: image side for ``"test"``; None means ``resolution``. In row mode it must equal
            ``resolution`` (the input size is the row width).
        test_noise: standard deviation of Gaussian noise added to ``"test"`` inputs.
        source: ``"digits"`` (scikit-learn 8x8, default) or ``"mnist"`` (needs ``mnist_path``).
        mnist_path: local MNIST folder of IDX files or ``.npz`` file.
        split_seed: seed of the fixed train/valid/test split of the digits.
        upsampling: ``"bilinear"`` or ``"nearest"`` (the RIMs paper's) resampling to other resolutions.

    Example:
        >>> task = SequentialDigitsTask(mode="pixel", test_resolution=16)
        >>> g = torch.Generator().manual_seed(0)
        >>> tuple(task.sample(2, g).x.shape), tuple(task.sample(2, g, split="test").x.shape)
        ((2, 64, 1), (2, 256, 1))
    """

    name = "seq_digits"
    kind = "classification"
    primary_metric = "accuracy"
    higher_is_better = True
    output_size = 10

    def __init__(
        self,
        mode: str = "pixel",
        permute: bool = False,
        perm_seed: int = 0,
        resolution: int | None = None,
        test_resolution: int | None = None,
        test_noise: float = 0.0,
        source: str = "digits",
        mnist_path: str | Path | None = None,
        split_seed: int = 0,
        upsampling: str = "bilinear",
    ) -> None:
        check_choice(mode, "mode", ("pixel", "row"))
        check_choice(upsampling, "upsampling", UPSAMPLINGS)
        self.upsampling = upsampling
        if not test_noise >= 0:
            raise ValueError(f"test_noise: expected a standard deviation >= 0, got {test_noise}")
        self._data = load_images(source, mnist_path, split_seed)
        native = int(self._data["train"].images.shape[1])
        resolution = native if resolution is None else resolution
        check_positive(resolution, "resolution")
        test_resolution = resolution if test_resolution is None else test_resolution
        check_positive(test_resolution, "test_resolution")
        if mode == "row" and test_resolution != resolution:
            raise ValueError(
                f"test_resolution: row mode reads one row of width {resolution} per step, so the test "
                f"resolution must equal resolution={resolution}; got {test_resolution} (use mode='pixel')"
            )
        self.mode = mode
        self.permute = permute
        self.perm_seed = perm_seed
        self.resolution = resolution
        self.test_resolution = test_resolution
        self.test_noise = float(test_noise)
        self.source = source
        self.input_size = 1 if mode == "pixel" else resolution
        self._permutations: dict[int, Tensor] = {}

    def permutation(self, resolution: int | None = None) -> Tensor | None:
        """The pixel order used at ``resolution`` (default: the training one), or None without ``permute``."""
        if not self.permute:
            return None
        r = self.resolution if resolution is None else resolution
        if r not in self._permutations:
            self._permutations[r] = pixel_permutation(r * r, self.perm_seed)
        return self._permutations[r]

    def seq_len(self, resolution: int | None = None) -> int:
        """T at ``resolution`` (default: the training one)."""
        r = self.resolution if resolution is None else resolution
        return r * r if self.mode == "pixel" else r

    def sample_at_resolution(
        self,
        batch_size: int,
        generator: torch.Generator,
        resolution: int,
        split: str = "test",
        noise: float = 0.0,
    ) -> Batch:
        """Images of ``split`` resampled to ``resolution`` x ``resolution``, plus Gaussian ``noise``.

        Returns:
            Batch with x `[B, T, D]`, target `[B, T]` (the class at every step), weight `[B, T]`
            (1 at the last step only) and info ``labels`` `[B]`.
        """
        split = check_split(split)
        check_positive(batch_size, "batch_size")
        check_positive(resolution, "resolution")
        if self.mode == "row" and resolution != self.resolution:
            raise ValueError(
                f"resolution: row mode needs resolution={self.resolution} (the input size), got {resolution}"
            )
        data = self._data[split]
        idx = torch.randint(0, data.labels.shape[0], (batch_size,), generator=generator)
        images = resample(data.images[idx], resolution, self.upsampling)  # (B, r, r)
        pixels = images.reshape(batch_size, resolution * resolution)  # (B, r*r) row-major
        perm = self.permutation(resolution)
        if perm is not None:
            pixels = pixels[:, perm]
        if noise > 0:
            pixels = pixels + noise * torch.randn(pixels.shape, generator=generator)
        T = self.seq_len(resolution)
        x = pixels.reshape(batch_size, T, -1)  # (B, T, 1) or (B, r, r)
        labels = data.labels[idx]
        target = labels[:, None].expand(batch_size, T).clone()  # (B, T)
        weight = torch.zeros(batch_size, T)
        weight[:, -1] = 1.0
        return Batch(x, target, weight, None, {"labels": labels})

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        """Draw images uniformly from ``split``; ``"test"`` uses ``test_resolution`` and ``test_noise``."""
        split = check_split(split)
        if split == "test":
            return self.sample_at_resolution(batch_size, generator, self.test_resolution, split, self.test_noise)
        return self.sample_at_resolution(batch_size, generator, self.resolution, split)

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """Cross-entropy at the last step (the weighted mean over steps with weight 1 there)."""
        check_logits(logits, batch.x, self.output_size)
        return weighted_cross_entropy(logits, batch.target, batch.weight)

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """``accuracy``: argmax at the scored (last) step equals the class."""
        check_logits(logits, batch.x, self.output_size)
        return {"accuracy": masked_accuracy(logits, batch.target, batch.weight > 0)}
