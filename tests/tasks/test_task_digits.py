"""Sequential / permuted digits: pixel and row layouts, the permutation, bilinear upsampling on a known
image, test noise, last-step scoring, argument errors."""

import pytest
import torch

from mnemonet.tasks.data import load_digits
from mnemonet.tasks.digits import SequentialDigitsTask, pixel_permutation, resample


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def train_images():
    data = load_digits(0)["train"]
    return {tuple(img.reshape(-1).tolist()): int(lab) for img, lab in zip(data.images, data.labels, strict=True)}


def test_pixel_mode_reads_the_image_row_major():
    task = SequentialDigitsTask(mode="pixel")
    batch = task.sample(10, gen(1))
    assert batch.x.shape == (10, 64, 1) and task.input_size == 1 and task.output_size == 10
    known = train_images()
    for b in range(10):
        label = known[tuple(batch.x[b, :, 0].tolist())]
        assert label == int(batch.info["labels"][b])
        assert torch.all(batch.target[b] == label)
    expected_w = torch.zeros(10, 64)
    expected_w[:, -1] = 1
    assert torch.equal(batch.weight, expected_w)


def test_row_mode_gives_rows():
    pixel = SequentialDigitsTask(mode="pixel").sample(4, gen(2))
    row = SequentialDigitsTask(mode="row").sample(4, gen(2))
    assert row.x.shape == (4, 8, 8)
    assert torch.equal(row.x.reshape(4, 64), pixel.x.reshape(4, 64))  # row t = pixels 8t .. 8t+7


def test_permutation_is_true_and_fixed_by_seed():
    perm = pixel_permutation(64, 3)
    assert torch.equal(perm.sort().values, torch.arange(64))
    assert torch.equal(perm, pixel_permutation(64, 3)) and not torch.equal(perm, pixel_permutation(64, 4))
    plain = SequentialDigitsTask().sample(5, gen(3))
    task = SequentialDigitsTask(permute=True, perm_seed=3)
    permuted = task.sample(5, gen(3))
    assert torch.equal(task.permutation(), perm)
    assert torch.equal(permuted.x[:, :, 0], plain.x[:, perm, 0])  # x_t = p_{π(t)}
    assert not torch.equal(permuted.x, plain.x)


def test_bilinear_resample_known_values():
    img = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    up = resample(img, 4)
    # align_corners=False: output centres at input coordinates -0.25, 0.25, 0.75, 1.25 (clamped)
    assert torch.allclose(up[0], torch.tensor([0.0, 0.25, 0.75, 1.0]).expand(4, 4))
    assert torch.equal(resample(img, 2), img)
    flat = torch.full((1, 8, 8), 0.3)
    assert torch.allclose(resample(flat, 12), torch.full((1, 12, 12), 0.3))


def test_upsampled_test_split_for_length_generalisation():
    task = SequentialDigitsTask(test_resolution=16)
    assert task.sample(2, gen(4)).x.shape == (2, 64, 1)
    test = task.sample(3, gen(4), split="test")
    assert test.x.shape == (3, 256, 1) and test.weight[:, -1].sum() == 3 and test.weight.sum() == 3
    at12 = task.sample_at_resolution(3, gen(4), 12)
    assert at12.x.shape == (3, 144, 1)
    test_data = load_digits(0)["test"]
    idx = torch.randint(0, test_data.labels.shape[0], (3,), generator=gen(4))
    expected = resample(test_data.images[idx], 12).reshape(3, 144, 1)
    assert torch.allclose(at12.x, expected)


def test_noise_only_on_test_inputs():
    clean = SequentialDigitsTask()
    noisy = SequentialDigitsTask(test_noise=0.5)
    assert torch.equal(noisy.sample(64, gen(5), split="train").x, clean.sample(64, gen(5), split="train").x)
    a = noisy.sample(64, gen(5), split="test").x
    b = clean.sample(64, gen(5), split="test").x
    assert abs(float((a - b).std()) - 0.5) < 0.02


def test_scoring_at_last_step_only():
    task = SequentialDigitsTask()
    batch = task.sample(4, gen(6))
    logits = torch.randn(4, 64, 10, generator=gen(7))
    labels = batch.info["labels"]
    logits[:, -1] = -5.0
    logits[torch.arange(4), -1, labels] = 5.0
    logits[0, -1, (int(labels[0]) + 1) % 10] = 9.0  # sequence 0 wrong
    assert task.metrics(logits, batch)["accuracy"] == 0.75
    reference = torch.nn.functional.cross_entropy(logits[:, -1], labels)
    assert float(task.loss(logits, batch)) == pytest.approx(float(reference), rel=1e-6)
    logits[:, :-1] = torch.randn(4, 63, 10)  # earlier steps do not count
    assert float(task.loss(logits, batch)) == pytest.approx(float(reference), rel=1e-6)


def test_reproducible():
    task = SequentialDigitsTask(permute=True)
    assert torch.equal(task.sample(6, gen(8)).x, task.sample(6, gen(8)).x)
    assert not torch.equal(task.sample(6, gen(8)).x, task.sample(6, gen(9)).x)


def test_mnist_source(tmp_path, mnist_folder):
    mnist_folder(tmp_path, n_train=24, n_test=6)
    task = SequentialDigitsTask(mode="row", source="mnist", mnist_path=tmp_path)
    assert task.input_size == 28 and task.sample(2, gen(), split="test").x.shape == (2, 28, 28)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        SequentialDigitsTask(mode="column")
    with pytest.raises(ValueError, match="test_resolution: row mode"):
        SequentialDigitsTask(mode="row", test_resolution=12)
    with pytest.raises(ValueError, match="resolution"):
        SequentialDigitsTask(resolution=0)
    with pytest.raises(ValueError, match="test_noise"):
        SequentialDigitsTask(test_noise=-1.0)
    with pytest.raises(FileNotFoundError, match="mnist_path"):
        SequentialDigitsTask(source="mnist", mnist_path="/nonexistent/mnist")
    task = SequentialDigitsTask()
    with pytest.raises(ValueError, match=r"logits: expected shape \(2, 64, 10\)"):
        task.loss(torch.zeros(2, 63, 10), task.sample(2, gen()))
