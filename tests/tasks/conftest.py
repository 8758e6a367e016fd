"""Fixtures for the task tests: tiny IDX files written by hand (the MNIST format)."""

import gzip

import numpy as np
import pytest


def write_idx(path, array: np.ndarray, type_byte: int = 0x08, compress: bool = False) -> bytes:
    """Write ``array`` as an IDX file: two zero bytes, type, ndim, big-endian sizes, big-endian data."""
    dtypes = {0x08: ">u1", 0x0D: ">f4"}
    header = bytes([0, 0, type_byte, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(dtypes[type_byte]).tobytes()
    data = gzip.compress(raw) if compress else raw
    path.write_bytes(data)
    return data


def write_mnist_folder(folder, n_train=12, n_test=4, side=28, compress=False) -> dict[str, np.ndarray]:
    """The four MNIST IDX files with random pixels and labels 0, 1, 2, ... (train) and 3, 4, ... (test)."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test, dtype=np.uint8) + 3) % 10,
    }
    for name, arr in arrays.items():
        write_idx(folder / (name + (".gz" if compress else "")), arr, compress=compress)
    return arrays


@pytest.fixture
def idx_writer():
    """The :func:`write_idx` helper."""
    return write_idx


@pytest.fixture
def mnist_folder():
    """The :func:`write_mnist_folder` helper."""
    return write_mnist_folder
