"""Delayed recall: every trial's layout checked step by step, the (Tmax-1):1 weighting, scoring on
hand-built logits, the delay evaluation with oracle models, and argument errors."""

import math

import pytest
import torch

from mnemonet.tasks.data import load_digits
from mnemonet.tasks.delayed_recall import DelayedRecallTask, evaluate_delays


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def task():
    return DelayedRecallTask(num_classes=10, t_max=20, min_gap=5)


def image_set(split):
    data = load_digits(0)[split]
    return {tuple(img.reshape(-1).tolist()): int(lab) for img, lab in zip(data.images, data.labels, strict=True)}


def test_shapes_and_sizes(task):
    batch = task.sample(6, gen())
    assert batch.x.shape == (6, 20, 65) and batch.target.shape == (6, 20) and batch.weight.shape == (6, 20)
    assert batch.target.dtype == torch.int64 and batch.lengths is None
    assert task.input_size == 65 and task.output_size == 11
    assert set(batch.info) == {"labels", "ts", "ta", "null_mask"}


def test_every_trial_follows_the_layout(task):
    """Plain-loop check of each trial against the task's definition."""
    train_images = image_set("train")
    batch = task.sample(64, gen(1))
    D = 64
    for b in range(64):
        ts, ta, label = int(batch.info["ts"][b]), int(batch.info["ta"][b]), int(batch.info["labels"][b])
        assert ts >= 0 and ta <= 19 and ta - ts >= 5
        assert train_images[tuple(batch.x[b, ts, :D].tolist())] == label  # the real image, from train
        for t in range(20):
            assert batch.x[b, t, D] == (1.0 if t == ta else 0.0)  # trigger, never noisy
            assert batch.target[b, t] == (label + 1 if t == ta else 0)
            assert batch.weight[b, t] == (19.0 if t == ta else 1.0)
            assert bool(batch.info["null_mask"][b, t]) == (t != ta)
            if t != ts:
                assert tuple(batch.x[b, t, :D].tolist()) not in train_images  # noise elsewhere


def test_noise_matches_pixel_statistics(task):
    batch = task.sample(200, gen(2))
    not_image = torch.ones(200, 20, dtype=torch.bool)
    not_image[torch.arange(200), batch.info["ts"]] = False
    noise = batch.x[..., :64][not_image]
    pixels = load_digits(0)["train"].images
    assert abs(float(noise.mean()) - float(pixels.mean())) < 0.01
    assert abs(float(noise.std()) - float(pixels.std())) < 0.01
    quiet = DelayedRecallTask(noise_scale=0.0).sample(4, gen(2))
    off = quiet.x[torch.arange(4), quiet.info["ta"], :64]
    assert torch.allclose(off, torch.full_like(off, float(pixels.mean())))


def test_times_cover_the_allowed_range():
    batch = DelayedRecallTask(t_max=12, min_gap=5).sample(2000, gen(3))
    ts, ta = batch.info["ts"], batch.info["ta"]
    assert int(ts.min()) == 0 and int(ts.max()) == 11 - 5
    assert int(ta.min()) == 5 and int(ta.max()) == 11
    assert int((ta - ts).min()) == 5


def test_classes_and_vocabulary():
    t = DelayedRecallTask(num_classes=3)
    labels = t.sample(300, gen(4)).info["labels"]
    assert set(labels.tolist()) == {0, 1, 2}
    t.num_classes = 10
    assert set(t.sample(600, gen(4)).info["labels"].tolist()) == set(range(10))


def test_window_limits_times_and_scoring():
    t = DelayedRecallTask(t_max=20, window=8)
    batch = t.sample(300, gen(5))
    assert int(batch.info["ta"].max()) <= 7
    assert torch.all(batch.weight[:, 8:] == 0) and torch.all(batch.target[:, 8:] == 0)
    assert torch.all(batch.weight[:, :8].sum(1) == 7 + 19)


def test_score_answer_only():
    batch = DelayedRecallTask(score="answer").sample(5, gen(6))
    expected = torch.zeros(5, 20)
    expected[torch.arange(5), batch.info["ta"]] = 1.0
    assert torch.equal(batch.weight, expected)


def test_test_split_uses_test_images(task):
    test_images, train_images = image_set("test"), image_set("train")
    batch = task.sample(40, gen(7), split="test")
    for b in range(40):
        img = tuple(batch.x[b, int(batch.info["ts"][b]), :64].tolist())
        assert img in test_images and test_images[img] == int(batch.info["labels"][b])
        assert img not in train_images


def test_same_seed_same_batch(task):
    a, b = task.sample(8, gen(9)), task.sample(8, gen(9))
    assert torch.equal(a.x, b.x) and torch.equal(a.target, b.target) and torch.equal(a.info["ts"], b.info["ts"])
    c = task.sample(8, gen(10))
    assert not torch.equal(a.x, c.x)


def hand_logits(batch, right):
    """Logits that say null everywhere and, at ta, the right class where ``right[b]`` (else class 1 off by one)."""
    B, T = batch.target.shape
    logits = torch.zeros(B, T, 11)
    logits[..., 0] = 5.0
    for b in range(B):
        ta, label = int(batch.info["ta"][b]), int(batch.info["labels"][b])
        logits[b, ta, 0] = 0.0
        logits[b, ta, (label + 1) if right[b] else (label + 1) % 10 + 1] = 5.0
    return logits


def test_metrics_on_hand_built_logits(task):
    batch = task.sample(8, gen(11))
    logits = hand_logits(batch, [True, False] * 4)
    m = task.metrics(logits, batch)
    assert m["accuracy"] == 0.5 and m["null_accuracy"] == 1.0
    logits[0, (int(batch.info["ta"][0]) + 1) % 20, 3] = 9.0  # one null step wrong
    assert task.metrics(logits, batch)["null_accuracy"] == pytest.approx(1 - 1 / (8 * 19))


def test_loss_matches_plain_loop(task):
    batch = task.sample(3, gen(12))
    logits = torch.randn(3, 20, 11, generator=gen(13))
    total, norm = 0.0, 0.0
    for b in range(3):
        for t in range(20):
            w = float(batch.weight[b, t])
            logp = logits[b, t] - torch.logsumexp(logits[b, t], 0)
            total += -w * float(logp[batch.target[b, t]])
            norm += w
    assert float(task.loss(logits, batch)) == pytest.approx(total / norm, rel=1e-5)
    assert norm == 3 * (19 + 19)  # answer weight Tmax-1 = 19 against 19 null steps


def test_sample_at_delay_beyond_training_range(task):
    batch = task.sample_at_delay(4, 40, gen(14), ts=2)
    assert batch.x.shape == (4, 43, 65)
    assert torch.all(batch.info["ts"] == 2) and torch.all(batch.info["ta"] == 42)
    assert torch.all(batch.x[:, 42, 64] == 1) and float(batch.x[:, :, 64].sum()) == 4
    short = task.sample_at_delay(2, 3, gen(14))
    assert short.x.shape[1] == 20 and torch.all(short.info["ta"] == 3)


def oracle(task, memory):
    """A model that recognises the shown image exactly and recalls it if the delay is at most ``memory``."""
    known = {**image_set("train"), **image_set("valid"), **image_set("test")}

    def model_fn(x):
        B, T, _ = x.shape
        logits = torch.zeros(B, T, task.output_size)
        logits[..., 0] = 1.0
        for b in range(B):
            ts = next(t for t in range(T) if tuple(x[b, t, :64].tolist()) in known)
            ta = int(x[b, :, 64].argmax())
            if ta - ts <= memory:
                logits[b, ta, known[tuple(x[b, ts, :64].tolist())] + 1] = 2.0
        return logits, None

    return model_fn


def test_evaluate_delays_with_oracles(task):
    perfect = evaluate_delays(oracle(task, math.inf), task, [5, 30, 60], n=10, generator=gen(15), batch_size=4)
    assert perfect == {5: 1.0, 30: 1.0, 60: 1.0}
    forgetful = evaluate_delays(oracle(task, 25), task, [10, 25, 26, 50], n=6, generator=gen(15))
    assert forgetful == {10: 1.0, 25: 1.0, 26: 0.0, 50: 0.0}
    assert task.evaluate_delays(oracle(task, 25), [25, 26], n=3, generator=gen(16), ts=4) == {25: 1.0, 26: 0.0}


def test_state_dict_round_trip():
    t = DelayedRecallTask(num_classes=4, window=9)
    u = DelayedRecallTask()
    u.load_state_dict(t.state_dict())
    assert (u.num_classes, u.window) == (4, 9)
    assert torch.equal(u.sample(3, gen(16)).x, t.sample(3, gen(16)).x)


def test_mnist_source(tmp_path, mnist_folder):
    mnist_folder(tmp_path, n_train=40, n_test=20)
    t = DelayedRecallTask(num_classes=2, source="mnist", mnist_path=tmp_path)
    batch = t.sample(3, gen(17), split="test")
    assert batch.x.shape == (3, 20, 785) and t.input_size == 785


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        DelayedRecallTask(num_classes=0)
    with pytest.raises(ValueError, match=r"num_classes: expected an integer in \[1, 10\]"):
        DelayedRecallTask(num_classes=11)
    with pytest.raises(ValueError, match="num_classes"):
        DelayedRecallTask(num_classes=5, max_classes=4)
    with pytest.raises(ValueError, match="min_gap"):
        DelayedRecallTask(t_max=6, min_gap=6)
    with pytest.raises(ValueError, match="window"):
        DelayedRecallTask(window=5)
    with pytest.raises(ValueError, match="score"):
        DelayedRecallTask(score="final")
    with pytest.raises(ValueError, match="source"):
        DelayedRecallTask(source="cifar")
    with pytest.raises(FileNotFoundError, match="mnist_path"):
        DelayedRecallTask(source="mnist")
    t = DelayedRecallTask()
    batch = t.sample(2, gen())
    with pytest.raises(ValueError, match=r"logits: expected shape \(2, 20, 11\)"):
        t.loss(torch.zeros(2, 20, 10), batch)
    with pytest.raises(ValueError, match="split"):
        t.sample(2, gen(), split="dev")
    with pytest.raises(ValueError, match="delay"):
        t.sample_at_delay(2, 0, gen())
