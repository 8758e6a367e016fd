"""Copy, repeat copy and associative recall: layouts parsed back step by step, padding and lengths,
answer-phase-only scoring on hand-built logits, BCE against a plain loop, argument errors."""

import math

import pytest
import torch

from mnemonet.tasks.bits import AssociativeRecallTask, CopyTask, RepeatCopyTask


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def perfect_logits(batch, scale=4.0):
    return (batch.target * 2 - 1) * scale


# -- copy ------------------------------------------------------------------------------------------


def test_copy_layout_and_padding():
    task = CopyTask(bits=5, length_range=(2, 9))
    batch = task.sample(16, gen(1))
    L = batch.info["length"]
    T = 2 * int(L.max()) + 1
    assert batch.x.shape == (16, T, 6) and batch.target.shape == (16, T, 5)
    assert torch.equal(batch.lengths, 2 * L + 1) and torch.equal(batch.info["lengths"], 2 * L + 1)
    for b in range(16):
        n = int(L[b])
        seq = batch.x[b, :n, :5]
        assert set(seq.unique().tolist()) <= {0.0, 1.0}
        assert torch.all(batch.x[b, :n, 5] == 0) and batch.x[b, n, 5] == 1 and torch.all(batch.x[b, n, :5] == 0)
        assert torch.all(batch.x[b, n + 1 :] == 0)  # answer phase and padding: zero input
        assert torch.equal(batch.target[b, n + 1 : 2 * n + 1], seq)
        assert torch.all(batch.target[b, : n + 1] == 0) and torch.all(batch.target[b, 2 * n + 1 :] == 0)
        expected_w = torch.zeros(T)
        expected_w[n + 1 : 2 * n + 1] = 1
        assert torch.equal(batch.weight[b], expected_w)


def test_copy_fixed_length_has_no_lengths():
    batch = CopyTask(bits=3, length_range=(4, 4)).sample(3, gen())
    assert batch.lengths is None and batch.x.shape == (3, 9, 4)


def test_copy_generalisation_lengths():
    task = CopyTask(length_range=(1, 5), test_length_range=(30, 32))
    assert int(task.sample(20, gen(2)).info["length"].max()) <= 5
    L = task.sample(20, gen(2), split="test").info["length"]
    assert int(L.min()) >= 30 and int(L.max()) <= 32
    assert int(task.sample(20, gen(2), split="valid").info["length"].max()) <= 5


def test_copy_metrics_count_answer_bits_only():
    task = CopyTask(bits=4, length_range=(3, 6))
    batch = task.sample(4, gen(3))
    logits = perfect_logits(batch)
    assert task.metrics(logits, batch) == {"bit_errors": 0.0, "sequence_accuracy": 1.0, "bit_error_rate": 0.0}
    noisy = logits.clone()
    noisy[:, : int(batch.info["length"].min()) + 1] = -noisy[:, : int(batch.info["length"].min()) + 1]
    assert task.metrics(noisy, batch)["bit_errors"] == 0.0  # input phase is not scored
    n0 = int(batch.info["length"][0])
    noisy[0, n0 + 1, :3] = -noisy[0, n0 + 1, :3]  # 3 wrong bits in sequence 0's answer
    m = task.metrics(noisy, batch)
    assert m["bit_errors"] == 3 / 4 and m["sequence_accuracy"] == 3 / 4
    scored = float(batch.weight.sum()) * 4
    assert m["bit_error_rate"] == pytest.approx(3 / scored)


def test_bits_loss_matches_plain_loop():
    task = CopyTask(bits=3, length_range=(1, 4))
    batch = task.sample(3, gen(4))
    logits = torch.randn(batch.target.shape, generator=gen(5))
    total, count = 0.0, 0
    for b in range(3):
        for t in range(batch.x.shape[1]):
            if batch.weight[b, t] == 0:
                continue
            for c in range(3):
                p = 1 / (1 + math.exp(-float(logits[b, t, c])))
                y = float(batch.target[b, t, c])
                total += -(y * math.log(p) + (1 - y) * math.log(1 - p))
                count += 1
    assert float(task.loss(logits, batch)) == pytest.approx(total / count, rel=1e-5)
    logits2 = logits.clone()
    logits2[batch.weight == 0] = 100.0  # unscored steps do not change the loss
    assert float(task.loss(logits2, batch)) == pytest.approx(total / count, rel=1e-5)


# -- repeat copy -----------------------------------------------------------------------------------


def test_repeat_copy_layout():
    task = RepeatCopyTask(bits=4, length_range=(1, 5), repeat_range=(1, 4))
    batch = task.sample(12, gen(6))
    assert task.input_size == 6 and task.output_size == 5
    for b in range(12):
        L, R = int(batch.info["length"][b]), int(batch.info["repeats"][b])
        T = L + 1 + R * L + 1
        assert int(batch.info["lengths"][b]) == T
        seq = batch.x[b, :L, :4]
        assert batch.x[b, L, 4] == 1 and batch.x[b, L, 5] == pytest.approx(R / 4)
        assert torch.all(batch.x[b, L + 1 :] == 0)
        for r in range(R):
            start = L + 1 + r * L
            assert torch.equal(batch.target[b, start : start + L, :4], seq)
        assert torch.all(batch.target[b, : T - 1, 4] == 0) and batch.target[b, T - 1, 4] == 1
        assert torch.all(batch.target[b, T - 1, :4] == 0)
        assert float(batch.weight[b].sum()) == R * L + 1 and torch.all(batch.weight[b, : L + 1] == 0)


def test_repeat_copy_generalisation_ranges():
    task = RepeatCopyTask(length_range=(1, 3), repeat_range=(1, 3), test_length_range=(4, 5), test_repeat_range=(6, 7))
    batch = task.sample(10, gen(7), split="test")
    assert int(batch.info["repeats"].min()) >= 6 and int(batch.info["length"].min()) >= 4
    L, R = batch.info["length"], batch.info["repeats"]
    repeat_channel = batch.x[torch.arange(10), L, -1]
    assert torch.allclose(repeat_channel, R / 3)  # above 1: beyond the training range


# -- associative recall ----------------------------------------------------------------------------


def parse_associative(x, k, W):
    """Read items and query back from one sequence's input; return (items, query)."""
    items = []
    t = 0
    while x[t, W] == 1:
        items.append(x[t + 1 : t + 1 + k, :W])
        t += k + 1
    assert x[t, W + 1] == 1 and x[t + k + 1, W + 1] == 1
    return items, x[t + 1 : t + 1 + k, :W]


def test_associative_recall_answer_follows_query():
    task = AssociativeRecallTask(bits=6, item_len=3, length_range=(2, 6))
    batch = task.sample(20, gen(8))
    for b in range(20):
        N, T = int(batch.info["length"][b]), int(batch.info["lengths"][b])
        assert T == N * 4 + 2 + 6
        items, query = parse_associative(batch.x[b], 3, 6)
        assert len(items) == N
        q = next(i for i, item in enumerate(items) if torch.equal(item, query))
        assert q < N - 1
        assert torch.equal(batch.target[b, T - 3 : T], items[q + 1])
        assert torch.all(batch.x[b, T - 3 :] == 0) and torch.all(batch.target[b, : T - 3] == 0)
        assert torch.equal(batch.weight[b, :T], torch.cat([torch.zeros(T - 3), torch.ones(3)]))


def test_associative_recall_metrics():
    task = AssociativeRecallTask(length_range=(3, 3))
    batch = task.sample(5, gen(9))
    logits = perfect_logits(batch)
    logits[1, -1, 0] = -logits[1, -1, 0]
    m = task.metrics(logits, batch)
    assert m["bit_errors"] == pytest.approx(1 / 5) and m["sequence_accuracy"] == pytest.approx(4 / 5)


# -- all bit tasks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [CopyTask, RepeatCopyTask, AssociativeRecallTask])
def test_reproducible_and_lower_is_better(cls):
    task = cls()
    a, b = task.sample(4, gen(10)), task.sample(4, gen(10))
    assert torch.equal(a.x, b.x) and torch.equal(a.target, b.target)
    assert not torch.equal(task.sample(4, gen(11)).x[:, :3], a.x[:, :3])
    assert task.kind == "bits" and task.primary_metric == "bit_errors" and task.higher_is_better is False
    logits = torch.zeros(a.target.shape, requires_grad=True)
    task.loss(logits, a).backward()
    assert logits.grad[a.weight == 0].abs().sum() == 0


def test_state_dict_round_trip():
    task = CopyTask(length_range=(1, 4))
    other = CopyTask()
    other.load_state_dict(task.state_dict())
    assert other.length_range == (1, 4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="length_range"):
        CopyTask(length_range=(0, 3))
    with pytest.raises(ValueError, match="length_range"):
        CopyTask(length_range=(5, 2))
    with pytest.raises(ValueError, match="test_length_range"):
        CopyTask(test_length_range=(3,))
    with pytest.raises(ValueError, match="bits"):
        CopyTask(bits=0)
    with pytest.raises(ValueError, match="repeat_range"):
        RepeatCopyTask(repeat_range=(0, 2))
    with pytest.raises(ValueError, match=r"length_range: expected a pair .* with 2 <= lo"):
        AssociativeRecallTask(length_range=(1, 4))
    with pytest.raises(ValueError, match="item_len"):
        AssociativeRecallTask(item_len=0)
    task = CopyTask(bits=2, length_range=(2, 2))
    batch = task.sample(2, gen())
    with pytest.raises(ValueError, match=r"logits: expected shape \(2, 5, 2\)"):
        task.metrics(torch.zeros(2, 5, 3), batch)
    with pytest.raises(ValueError, match="batch_size"):
        task.sample(0, gen())


# -- shared padding ------------------------------------------------------------------------------------


def test_pad_sequences_fills_the_tail_and_keeps_the_target_dtype():
    from mnemonet.tasks.base import pad_sequences

    long = (torch.ones(3, 2), torch.tensor([[1], [2], [3]]), torch.ones(3))
    short = (2 * torch.ones(1, 2), torch.tensor([[4]]), torch.ones(1))
    batch = pad_sequences([long, short], target_fill=-1)
    assert batch.target.dtype == torch.int64 and batch.target[:, :, 0].tolist() == [[1, 2, 3], [4, -1, -1]]
    assert batch.x[1].tolist() == [[2.0, 2.0], [0.0, 0.0], [0.0, 0.0]]
    assert batch.weight.tolist() == [[1, 1, 1], [1, 0, 0]] and batch.lengths.tolist() == [3, 1]
    assert pad_sequences([long, long]).lengths is None
