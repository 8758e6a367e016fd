"""Copy with a delay: the drawn layout, one-hot and index encodings, the test delay, recall-only scoring."""

import pytest
import torch

from mnemonet.tasks import make_task
from mnemonet.tasks.copy_delay import CopyDelayTask
from mnemonet.tasks.digits import resample


def test_layout_symbols_blanks_marker_recall():
    task = CopyDelayTask(length=3, alphabet=4, delay=5, encoding="index")
    b = task.sample(6, torch.Generator().manual_seed(0))
    tok = b.info["tokens"]
    assert b.x.shape == (6, 11, 1) and torch.equal(b.x[..., 0].long(), tok)
    symbols = tok[:, :3]
    assert bool(((symbols >= 1) & (symbols <= 4)).all())
    assert torch.equal(tok[:, 3:7], torch.zeros(6, 4, dtype=torch.int64))  # d - 1 blanks
    assert torch.equal(tok[:, 7], torch.full((6,), 5))  # the marker, last of the d steps
    assert torch.equal(tok[:, 8:], torch.zeros(6, 3, dtype=torch.int64))
    assert torch.equal(b.target[:, 8:], symbols - 1) and torch.equal(b.weight[:, 8:], torch.ones(6, 3))
    assert float(b.weight[:, :8].abs().sum()) == 0.0


def test_one_hot_test_delay_and_scoring():
    task = make_task("copy_delay", length=2, alphabet=3, delay=4, test_delay=10)
    g = torch.Generator().manual_seed(1)
    b = task.sample(5, g)
    assert b.x.shape == (5, 8, 5) and torch.equal(b.x.argmax(-1), b.info["tokens"])
    assert task.sample(5, g, split="test").x.shape == (5, 14, 5)
    perfect = torch.nn.functional.one_hot(b.target, 3).float() * 10  # (B, T, 3)
    assert task.metrics(perfect, b)["accuracy"] == 1.0
    wrong = torch.nn.functional.one_hot((b.target + 1) % 3, 3).float() * 10
    assert task.metrics(wrong, b)["accuracy"] == 0.0
    assert float(task.loss(perfect, b)) < 1e-3
    with pytest.raises(ValueError, match="encoding"):
        CopyDelayTask(encoding="bits")
    with pytest.raises(ValueError, match="delay"):
        CopyDelayTask(delay=0)


def test_nearest_upsampling_copies_pixels():
    img = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    up = resample(img, 4, "nearest")
    assert torch.equal(up[0], torch.tensor([[0.0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]))
    x = torch.rand(3, 8, 8)
    assert set(resample(x, 11, "nearest").flatten().tolist()) <= set(x.flatten().tolist())
