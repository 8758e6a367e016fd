"""Data loaders: the fixed digits split, IDX / npz MNIST files written here, text corpora, the vocabulary."""

import hashlib

import numpy as np
import pytest
import torch

from mnemonet.tasks.data import (
    CharVocab,
    load_digits,
    load_images,
    load_mnist,
    load_text,
    proportional_split,
    read_idx,
    shakespeare_text,
)

# -- digits -------------------------------------------------------------------------------------


def test_digits_split_is_a_fixed_partition():
    parts = load_digits(0)
    sizes = [parts[s].labels.shape[0] for s in ("train", "valid", "test")]
    assert sizes == [1437, 180, 180]
    assert parts["train"].images.shape == (1437, 8, 8)
    assert float(parts["train"].images.min()) >= 0.0 and float(parts["train"].images.max()) == 1.0
    # the union is all 1,797 images, each once: compare sorted flattened rows with sklearn's data
    from sklearn.datasets import load_digits as sk

    everything = torch.cat([parts[s].images.reshape(-1, 64) for s in ("train", "valid", "test")]) * 16
    reference = torch.as_tensor(sk().data, dtype=torch.float32)
    key = lambda m: sorted(map(tuple, m.tolist()))  # noqa: E731
    assert key(everything) == key(reference)
    again = load_digits.__wrapped__(0)
    assert torch.equal(again["test"].images, parts["test"].images)
    other = load_digits.__wrapped__(1)
    assert not torch.equal(other["test"].labels, parts["test"].labels)


# -- IDX / MNIST -----------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, compress, idx_writer):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    idx_writer(tmp_path / "a.idx", arr, compress=compress)
    out = read_idx(tmp_path / "a.idx")
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 4)
    assert torch.equal(out, torch.from_numpy(arr))


def test_read_idx_big_endian_floats(tmp_path, idx_writer):
    arr = np.array([[1.5, -2.25], [3.0, 1e-3]], dtype=np.float32)
    idx_writer(tmp_path / "f.idx", arr, type_byte=0x0D)
    assert torch.equal(read_idx(tmp_path / "f.idx"), torch.from_numpy(arr))


def test_read_idx_checksum(tmp_path, idx_writer):
    data = idx_writer(tmp_path / "a.idx.gz", np.zeros((2, 2), np.uint8), compress=True)
    good = hashlib.sha256(data).hexdigest()
    assert read_idx(tmp_path / "a.idx.gz", sha256=good).shape == (2, 2)
    with pytest.raises(ValueError, match="SHA-256"):
        read_idx(tmp_path / "a.idx.gz", sha256="0" * 64)


def test_read_idx_rejects_bad_files(tmp_path, idx_writer):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    idx_writer(tmp_path / "short.idx", np.zeros((3, 4), np.uint8))
    truncated = (tmp_path / "short.idx").read_bytes()[:-1]
    (tmp_path / "short.idx").write_bytes(truncated)
    with pytest.raises(ValueError, match="23 bytes, expected 24"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "type.idx").write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="type byte"):
        read_idx(tmp_path / "type.idx")
    with pytest.raises(FileNotFoundError, match="path"):
        read_idx(tmp_path / "missing.idx")


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_folder(tmp_path, compress, mnist_folder):
    arrays = mnist_folder(tmp_path, compress=compress)
    parts = load_mnist(tmp_path)
    assert parts["train"].images.shape == (11, 28, 28) and parts["valid"].images.shape == (1, 28, 28)
    assert parts["test"].images.shape == (4, 28, 28)
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"][:11].astype(np.float32) / 255)
    assert torch.allclose(parts["train"].images, expected)
    assert parts["valid"].labels.tolist() == [11 % 10]
    assert parts["test"].labels.tolist() == [3, 4, 5, 6]


def test_load_mnist_checksums_and_errors(tmp_path, mnist_folder):
    mnist_folder(tmp_path)
    with pytest.raises(ValueError, match="SHA-256"):
        load_mnist(tmp_path, checksums={"t10k-labels-idx1-ubyte": "f" * 64})
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"mnist_path.*t10k-labels"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="mnist_path"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="mnist_path"):
        load_images("mnist")


def test_load_mnist_label_count_mismatch(tmp_path, mnist_folder, idx_writer):
    mnist_folder(tmp_path)
    idx_writer(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="y_test: expected 4 labels"):
        load_mnist(tmp_path)


def test_load_mnist_npz(tmp_path):
    x_train = np.full((24, 784), 255, np.uint8)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=x_train,
        y_train=np.arange(24) % 10,
        x_test=np.zeros((2, 28, 28), np.uint8),
        y_test=np.array([7, 1]),
    )
    parts = load_mnist(tmp_path / "mnist.npz")
    assert parts["train"].images.shape == (22, 28, 28) and parts["valid"].labels.shape == (2,)
    assert float(parts["train"].images.min()) == 1.0
    assert parts["test"].labels.tolist() == [7, 1]


# -- text ----------------------------------------------------------------------------------------


def test_char_vocab_round_trip_and_unknowns():
    vocab = CharVocab.from_text("hello world")
    assert vocab.chars == " dehlorw" and len(vocab) == 9
    ids = vocab.encode("hold!")
    assert ids.dtype == torch.uint8
    assert ids.tolist() == [4, 6, 5, 2, 0]  # '!' is unknown -> 0
    assert vocab.decode(ids) == "hold\ufffd"
    uni = CharVocab.from_text("aβγ—")  # non-Latin-1 text takes the code-point path
    assert uni.encode("γaβz").tolist() == [3, 1, 2, 0]
    assert uni.decode(uni.encode("β—")) == "β—"


def test_shakespeare_is_bundled_and_cached():
    text = shakespeare_text()
    assert len(text) > 4_000_000
    assert "To be, or not to be" in text and "# Hamlet" in text
    assert shakespeare_text() is text
    splits = load_text("shakespeare")
    assert len(splits.train) == int(len(text) * 0.9)
    assert splits.train + splits.valid + splits.test == text


def test_proportional_split_90_5_5():
    parts = proportional_split("x" * 1000)
    assert [len(p) for p in parts] == [900, 50, 50]


def test_text8_and_enwik8_files(tmp_path):
    (tmp_path / "text8").write_text("ab cd " * 50)  # 300 characters
    t8 = load_text("text8", tmp_path / "text8")
    assert [len(p) for p in t8] == [270, 15, 15]
    (tmp_path / "enwik8").write_bytes(bytes(range(256)) * 4)
    en = load_text("enwik8", tmp_path / "enwik8")
    assert len(en.train) == 921 and en.train[200] == chr(200)  # each byte is one character


def test_ptb_char_files(tmp_path):
    for split, line in [("train", "a _ c a t"), ("valid", "t h e _ d o g"), ("test", "n o")]:
        (tmp_path / f"ptb.char.{split}.txt").write_text(f"{line}\n{line}\n")
    splits = load_text("ptb", tmp_path)
    assert splits.train == "a cat\na cat\n" and splits.valid == "the dog\nthe dog\n"


def test_text_errors(tmp_path):
    with pytest.raises(ValueError, match="corpus"):
        load_text("wiki")
    with pytest.raises(FileNotFoundError, match="path"):
        load_text("text8")
    with pytest.raises(FileNotFoundError, match="path"):
        load_text("ptb", tmp_path)
    with pytest.raises(FileNotFoundError, match="path"):
        load_text("enwik8", tmp_path / "nope")
