"""Trajectories: shapes, agreement with a plain step loop, phases of delayed recall, row sampling."""

import pytest
import torch
from analysis_toy_models import PairCell, tanh_model

from mnemonet.analysis.trajectories import (
    AFTER,
    BEFORE,
    DELAY,
    IMAGE,
    PADDING,
    phase_labels,
    run_trajectories,
    sample_rows,
    states_at,
)
from mnemonet.models.recurrent import Recurrent

D64 = torch.float64


def test_phase_labels_by_hand():
    ts = torch.tensor([1, 0])
    ta = torch.tensor([4, 2])
    b, i, d, a = BEFORE, IMAGE, DELAY, AFTER
    want = torch.tensor([[b, i, d, d, a, a], [i, d, a, a, a, a]])
    assert torch.equal(phase_labels(ts, ta, 6), want)
    # a two-step image, and padding past each length
    got = phase_labels(ts, ta, 6, image_steps=2, lengths=torch.tensor([6, 3]))
    assert torch.equal(got, torch.tensor([[b, i, i, d, a, a], [i, i, a, PADDING, PADDING, PADDING]]))


def test_phase_labels_reject_bad_times():
    with pytest.raises(ValueError, match="ta"):
        phase_labels(torch.tensor([3]), torch.tensor([3]), 6)
    with pytest.raises(ValueError, match="ts"):
        phase_labels(torch.tensor([1.0]), torch.tensor([3]), 6)
    with pytest.raises(ValueError, match="ta"):
        phase_labels(torch.tensor([1]), torch.tensor([3, 4]), 6)
    with pytest.raises(ValueError, match="ta <= T"):
        phase_labels(torch.tensor([1]), torch.tensor([9]), 6)


def test_trajectories_match_a_plain_step_loop():
    model = Recurrent(PairCell())
    x = torch.randn(3, 5, 2, dtype=D64)
    traj = run_trajectories(
        model, x, labels=torch.tensor([0, 2, 1]), ts=torch.tensor([0, 1, 2]), ta=torch.tensor([2, 3, 4])
    )
    assert traj.states.shape == (3, 5, 4) and traj.outputs.shape == (3, 5, 2) and traj.phases.shape == (3, 5)
    state = model.initial_state(3)
    for t in range(5):
        _, state = model.step(x[:, t], state)
        torch.testing.assert_close(traj.states[:, t], model.flatten_state(state))
    assert bool(traj.mask.all()) and not traj.states.requires_grad
    rows, labels = traj.flat(DELAY)
    assert rows.shape == (3, 4) and labels.tolist() == [0, 2, 1]  # one delay step each
    torch.testing.assert_close(traj.end_of_delay(), traj.states[torch.arange(3), torch.tensor([1, 2, 3])])
    assert traj.noise_inputs().shape == (1 + 2 + 3, 2)  # pre-image + delay steps of the three trials


def test_time_major_models_and_lengths():
    model = tanh_model(torch.tensor([[0.5, 0.1], [0.0, 0.9]], dtype=D64), U=torch.ones(2, 1, dtype=D64))
    tm = Recurrent(model.cell, batch_first=False)
    x = torch.randn(2, 4, 1, dtype=D64)
    lengths = torch.tensor([4, 2])
    a = run_trajectories(model, x, lengths=lengths)
    b = run_trajectories(tm, x, lengths=lengths)
    torch.testing.assert_close(a.states, b.states)
    assert a.mask.tolist() == [[True] * 4, [True, True, False, False]]
    with pytest.raises(ValueError, match="x"):
        run_trajectories(model, torch.zeros(2, 4, 3, dtype=D64))
    with pytest.raises(ValueError, match="ts, ta"):
        run_trajectories(model, x, ts=torch.tensor([0, 0]))


def test_predictions_and_correct_use_the_answer_offset():
    model = Recurrent(PairCell())
    x = torch.randn(2, 4, 2, dtype=D64)
    traj = run_trajectories(
        model, x, labels=torch.tensor([0, 1]), ts=torch.tensor([0, 0]), ta=torch.tensor([2, 3]), answer_offset=1
    )
    raw = traj.outputs[torch.arange(2), torch.tensor([2, 3])].argmax(-1)
    assert traj.predictions().tolist() == (raw - 1).tolist()
    assert traj.correct().tolist() == ((raw - 1) == torch.tensor([0, 1])).tolist()


def test_states_at_by_hand():
    states = torch.arange(2 * 3 * 1, dtype=D64).reshape(2, 3, 1)
    assert states_at(states, torch.tensor([2, 0])).flatten().tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="index"):
        states_at(states, torch.tensor([3, 0]))


def test_sample_rows():
    rows = torch.arange(10, dtype=D64)[:, None].repeat(1, 2)
    g = torch.Generator().manual_seed(0)
    out, idx = sample_rows(rows, 6, generator=g)
    assert len(set(idx.tolist())) == 6 and torch.equal(out, rows[idx])
    out, idx = sample_rows(rows, 25, generator=g)
    assert out.shape == (25, 2) and int(idx.max()) < 10
    out, idx = sample_rows(rows, 4000, noise=0.5, generator=g)
    assert abs(float((out - rows[idx]).std()) - 0.5) < 0.03
    with pytest.raises(ValueError, match="noise"):
        sample_rows(rows, 3, noise=-1.0)
    with pytest.raises(ValueError, match="num"):
        sample_rows(rows, 0)
