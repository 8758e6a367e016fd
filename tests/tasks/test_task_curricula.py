"""Curricula: VoCu, DeCu and the length curriculum step through their stages on threshold, apply them to
the task, respect patience and metric direction, and round-trip their state."""

import pytest
import torch

from mnemonet.tasks.bits import AssociativeRecallTask, CopyTask
from mnemonet.tasks.curricula import (
    DelayCurriculum,
    DelaySchedule,
    LengthCurriculum,
    VocabularyCurriculum,
    VocabularySchedule,
)
from mnemonet.tasks.delayed_recall import DelayedRecallTask
from mnemonet.tasks.digits import SequentialDigitsTask


@pytest.fixture(scope="module")
def recall():
    return DelayedRecallTask()


def test_vocu_grows_classes_from_two(recall):
    cur = VocabularyCurriculum(recall, threshold=0.9)
    assert recall.num_classes == 2 and cur.stage == 0 and not cur.finished and cur.describe() == "classes 2/10"
    assert cur.observe({"accuracy": 0.89}) is False and recall.num_classes == 2
    seen = []
    while not cur.finished:
        assert cur.observe({"accuracy": 0.9}) is True
        seen.append(recall.num_classes)
    assert seen == list(range(3, 11)) and cur.stage == 8
    assert cur.observe({"accuracy": 1.0}) is False and recall.num_classes == 10
    labels = recall.sample(400, torch.Generator().manual_seed(0)).info["labels"]
    assert set(labels.tolist()) == set(range(10))


def test_patience_needs_consecutive_hits(recall):
    cur = VocabularyCurriculum(recall, threshold=0.8, patience=2)
    assert not cur.observe({"accuracy": 0.9})
    assert not cur.observe({"accuracy": 0.5})  # a miss resets the count
    assert not cur.observe({"accuracy": 0.9})
    assert cur.observe({"accuracy": 0.95}) and recall.num_classes == 3


def test_decu_grows_the_window_to_tmax():
    task = DelayedRecallTask(t_max=11, min_gap=5)
    cur = DelayCurriculum(task, step=2)
    windows = [task.window]
    while cur.observe({"accuracy": 1.0}):
        windows.append(task.window)
    assert windows == [6, 8, 10, 11] and cur.finished
    assert int(task.sample(500, torch.Generator().manual_seed(0)).info["ta"].max()) == 10
    cur2 = DelayCurriculum(task, start=6)
    assert int(task.sample(500, torch.Generator().manual_seed(0)).info["ta"].max()) == 5
    assert cur2.describe() == "window 6/11"


def test_length_curriculum_on_bit_tasks():
    task = CopyTask(length_range=(2, 6))
    cur = LengthCurriculum(task, step=2)
    assert task.length_range == (2, 2)
    assert not cur.observe({"sequence_accuracy": 0.5, "bit_errors": 3.0})
    assert cur.observe({"sequence_accuracy": 0.95}) and task.length_range == (2, 4)
    assert cur.observe({"sequence_accuracy": 0.95}) and task.length_range == (2, 6) and cur.finished


def test_lower_is_better_metric_uses_task_direction():
    task = AssociativeRecallTask(length_range=(2, 5))
    cur = LengthCurriculum(task, metric="bit_errors", threshold=0.5)
    assert cur.higher_is_better is False
    assert not cur.observe({"bit_errors": 2.0})
    assert cur.observe({"bit_errors": 0.25}) and task.length_range == (2, 3)


def test_state_round_trip_reapplies_the_stage():
    a_task, b_task = DelayedRecallTask(), DelayedRecallTask()
    a = VocabularyCurriculum(a_task, patience=2)
    for _ in range(7):
        a.observe({"accuracy": 1.0})
    state = a.state_dict()
    assert state == {"stage": 3, "hits": 1, "value": 5}
    b = VocabularyCurriculum(b_task, patience=2)
    b.load_state_dict(state)
    assert b.stage == 3 and b.hits == 1 and b_task.num_classes == 5
    assert b.observe({"accuracy": 1.0}) and b_task.num_classes == 6
    with pytest.raises(ValueError, match="stage 9"):
        b.load_state_dict({"stage": 9})
    c_task = CopyTask(length_range=(1, 8))
    c = LengthCurriculum(c_task)
    c.load_state_dict({"stage": 4})
    assert c_task.length_range == (1, 5)


def test_bad_arguments(recall):
    cur = VocabularyCurriculum(recall)
    with pytest.raises(ValueError, match="metrics: expected a value for 'accuracy'"):
        cur.observe({"loss": 0.1})
    with pytest.raises(ValueError, match="start"):
        VocabularyCurriculum(recall, start=0)
    with pytest.raises(ValueError, match="start"):
        VocabularyCurriculum(recall, start=3, end=11)
    with pytest.raises(ValueError, match="start"):
        DelayCurriculum(recall, start=4)
    with pytest.raises(ValueError, match="task"):
        VocabularyCurriculum(CopyTask())
    with pytest.raises(ValueError, match="task"):
        LengthCurriculum(SequentialDigitsTask())
    with pytest.raises(ValueError, match="step"):
        LengthCurriculum(CopyTask(), step=0)


def test_decu_schedule_is_the_authors_at_140k_steps():
    """The authors' DeCu (DoronHaviv/MemoryRNN): window 6 until step 20k, +2 every 10k, 20 from 80k on."""
    task = DelayedRecallTask()
    cur = DelaySchedule(task)
    reference = {0: 6, 19_999: 6, 20_000: 8, 29_999: 8, 30_000: 10, 70_000: 18, 79_999: 18, 80_000: 20, 139_999: 20}
    for step, window in reference.items():
        cur.at_step(step, 140_000)
        assert task.window == window, step
    assert cur.finished and cur.observe({"accuracy": 0.0}) is False  # metrics never move it


def test_vocu_schedule_is_the_authors_at_140k_steps():
    task = DelayedRecallTask()
    cur = VocabularySchedule(task)
    assert task.num_classes == 2
    starts = [0, 8_000, 16_000, 26_000, 36_000, 48_000, 62_000, 78_000, 98_000]
    for classes, start in enumerate(starts, 2):
        if start:
            cur.at_step(start - 1, 140_000)
            assert task.num_classes == classes - 1, start - 1
        assert cur.at_step(start, 140_000) == (start > 0)
        assert task.num_classes == classes, start
    state = cur.state_dict()
    other = VocabularySchedule(DelayedRecallTask())
    other.load_state_dict(state)
    assert other.task.num_classes == 10 and other.finished


def test_schedule_scales_to_any_length_and_clips_to_the_task():
    task = DelayedRecallTask(t_max=12, min_gap=5)
    cur = DelaySchedule(task)
    assert cur.values == [6, 8, 10, 12]  # 14..18 clipped to Tmax and merged; ends at the task's Tmax
    assert [cur.stage_at(s, 700) for s in (99, 100, 149, 150, 200, 699)] == [0, 1, 1, 2, 3, 3]
    with pytest.raises(ValueError, match="starts"):
        DelaySchedule(task, windows=[6, 8], starts=[0.0, 1.0])


def test_trainer_moves_a_fixed_schedule_by_step(tmp_path):
    """DeCu schedule on Tmax = 8: windows 6, 8 (the rest clipped); 8 from step 14 * 2/14 = 2 on."""
    from mnemonet.app import read_metrics, train
    from mnemonet.training import load_config

    cfg = {
        "model": {"name": "gru", "hidden_size": 4},
        "task": {"name": "delayed_recall", "t_max": 8, "min_gap": 2},
        "curriculum": {"name": "decu_schedule"},
        "trainer": {"steps": 14, "batch_size": 4, "eval_every": 1, "eval_batches": 1, "checkpoint_every": 14,
                    "tensorboard": False, "threads": 1, "device": "cpu"},
    }  # fmt: skip
    train(load_config(cfg), out=tmp_path / "run", progress="off")
    windows = [r["curriculum"] for r in read_metrics(tmp_path / "run")]
    assert windows == ["window 6/8"] * 2 + ["window 8/8"] * 12  # record at step s: after s steps
