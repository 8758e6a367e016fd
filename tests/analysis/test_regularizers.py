"""Regularisers: values on hand-built states, gradients, anchors from trajectories, a short fine-tune."""

import pytest
import torch
from analysis_toy_models import linear_model, tanh_model

import mnemonet
from mnemonet.analysis.regularizers import (
    AnchorPull,
    SpeedRegularizer,
    TaskRegularizer,
    TrajectorySpeedPenalty,
    answer_offset,
    class_centres_of_mass,
    memory_mask,
    speed_regularizer_from_trajectories,
)
from mnemonet.analysis.trajectories import DELAY, IMAGE, run_trajectories
from mnemonet.tasks.base import Batch

D64 = torch.float64


def test_class_centres_of_mass_by_hand():
    states = torch.tensor([[1.0, 0.0], [3.0, 2.0], [9.0, 9.0], [0.0, 4.0], [2.0, 2.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    correct = torch.tensor([True, True, False, True, True])
    com = class_centres_of_mass(states, labels, correct)
    torch.testing.assert_close(com, torch.tensor([[2.0, 1.0], [1.0, 3.0]]))
    # trajectories [N, T, S] averaged over masked steps of correct trials
    traj = torch.stack([states, states + 10.0], 1)  # (5, 2, 2)
    mask = torch.tensor([[True, False]] * 5)
    torch.testing.assert_close(class_centres_of_mass(traj, labels, correct, mask=mask), com)
    both = class_centres_of_mass(traj, labels, correct)
    torch.testing.assert_close(both, com + 5.0)
    with pytest.raises(ValueError, match=r"correct: classes \[2\]"):
        class_centres_of_mass(states, labels, correct, num_classes=3)
    with pytest.raises(ValueError, match="labels"):
        class_centres_of_mass(states, labels[:4], correct)


def test_speed_regularizer_value_and_gradient_on_a_linear_model():
    A = torch.tensor([[0.5, 0.2], [-0.1, 0.7]], dtype=D64)
    B = torch.tensor([[1.0, 0.0], [0.5, -1.0]], dtype=D64)
    model = linear_model(A, B)
    anchors = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, 0.0]], dtype=D64)
    inputs = torch.tensor([[0.1, 0.2], [-0.3, 0.0]], dtype=D64)
    reg = SpeedRegularizer(model, anchors, inputs, weight=0.01)
    # plain loop: λ Σ_k Σ_r ‖A h_k + B I_r − h_k‖²
    want = sum(((A @ h + B @ x - h) ** 2).sum() for h in anchors for x in inputs) * 0.01
    value = reg(model)
    torch.testing.assert_close(value, want)
    value.backward()
    grad_A = 0.01 * sum(2 * torch.outer(A @ h + B @ x - h, h) for h in anchors for x in inputs)
    torch.testing.assert_close(model.cell.A.grad, grad_A)
    assert not reg.anchors.requires_grad
    anchors[0, 0] = 100.0  # the regulariser holds its own copy
    torch.testing.assert_close(reg(), value.detach())


def test_speed_regularizer_gradcheck_and_fresh_inputs():
    W = torch.tensor([[0.9, -0.3], [0.4, 1.1]], dtype=D64, requires_grad=True)
    anchors = torch.randn(3, 2, dtype=D64)
    inputs = torch.randn(4, 1, dtype=D64)

    def penalty(w):
        model = tanh_model(torch.zeros(2, 2, dtype=D64), U=torch.ones(2, 1, dtype=D64))
        del model.cell.W
        model.cell.W = w  # a plain tensor attribute: the gradient flows to w
        return SpeedRegularizer(model, anchors, inputs, weight=0.5)()

    assert torch.autograd.gradcheck(penalty, (W,))
    calls = []
    model = tanh_model(torch.eye(2, dtype=D64), U=torch.ones(2, 1, dtype=D64))

    def draw():
        calls.append(1)
        return torch.randn(4, 1, dtype=D64)

    reg = SpeedRegularizer(model, anchors, draw, weight=1.0)
    assert reg() != reg() and len(calls) == 2
    with pytest.raises(ValueError, match="inputs"):
        SpeedRegularizer(model, anchors, torch.zeros(4, 3, dtype=D64))
    with pytest.raises(ValueError, match="anchors"):
        SpeedRegularizer(model, torch.zeros(3, 5, dtype=D64), inputs)
    with pytest.raises(ValueError, match="weight"):
        SpeedRegularizer(model, anchors, inputs, weight=-1.0)


def test_trajectory_speed_penalty_by_hand():
    states = torch.tensor([[[0.0], [1.0], [3.0], [3.0]], [[0.0], [2.0], [2.0], [5.0]]], requires_grad=True)
    mask = torch.tensor([[True, True, True, False], [False, True, True, True]])
    # transitions inside the mask: trial 0: 0→1 (1), 1→2 (4); trial 1: 1→2 (0), 2→3 (9); mean 14/4
    pen = TrajectorySpeedPenalty(weight=2.0)(None, states, mask)
    torch.testing.assert_close(pen, torch.tensor(2.0 * 14 / 4))
    pen.backward()
    assert states.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="mask"):
        TrajectorySpeedPenalty()(None, states, mask[:, :3])


def test_anchor_pull_by_hand():
    anchors = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    states = torch.tensor([[[1.0, 0.0], [2.0, 0.0]], [[9.0, 0.0], [7.0, 0.0]]])
    mask = torch.tensor([[True, True], [True, False]])
    pull = AnchorPull(anchors, weight=1.0)
    # with labels (trial 0 → anchor 1, trial 1 → anchor 0): (81 + 64 + 81) / 3
    torch.testing.assert_close(pull(None, states, mask, torch.tensor([1, 0])), torch.tensor(226 / 3))
    # nearest anchor: (1 + 4 + 1) / 3
    torch.testing.assert_close(pull(None, states, mask), torch.tensor(2.0))
    with pytest.raises(ValueError, match="labels"):
        pull(None, states, mask, torch.tensor([0, 2]))


def _delayed_recall_like(B=24, T=8, D=3, seed=0):
    """Noise inputs (trigger off), a class-coded image at ts, the trigger bit (last channel) at ta."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(B) % 2
    ts = torch.randint(0, 2, (B,), generator=g)
    ta = ts + 3 + torch.randint(0, 2, (B,), generator=g)
    x = torch.zeros(B, T, D + 1)
    x[:, :, :D] = 0.1 * torch.randn(B, T, D, generator=g)
    x[torch.arange(B), ts, :D] = torch.where(labels[:, None] == 1, 1.0, -1.0).expand(B, D)
    x[torch.arange(B), ta, D] = 1.0
    return x, labels, ts, ta


def test_regularizer_from_trajectories_and_a_short_fine_tune_slows_the_anchors():
    torch.manual_seed(0)
    model = mnemonet.build("gru", input_size=4, hidden_size=6)
    x, labels, ts, ta = _delayed_recall_like()
    traj = run_trajectories(model, x, labels=labels, ts=ts, ta=ta)
    # untrained: call every trial correct so every class has a centre
    traj.outputs = torch.zeros_like(traj.outputs)
    traj.outputs[torch.arange(len(traj)), ta, labels] = 1.0
    reg = speed_regularizer_from_trajectories(model, traj, num_inputs=5, weight=1.0)
    after = traj.select(IMAGE) | traj.select(DELAY)
    torch.testing.assert_close(reg.anchors, class_centres_of_mass(traj.states, labels, traj.correct(), mask=after))
    assert reg.inputs.shape == (5, 4) and bool((reg.inputs[:, 3] == 0).all())  # trigger off
    before = float(reg().detach())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        reg().backward()
        opt.step()
    assert float(reg().detach()) < 0.5 * before
    sp_reg = speed_regularizer_from_trajectories(
        model, traj, anchors="slow_points", num_inputs=3, fresh_inputs=True, per_class=2, max_steps=200
    )
    assert sp_reg.anchors.shape == (2, 6) and callable(sp_reg.inputs) and sp_reg().ndim == 0
    with pytest.raises(ValueError, match="anchors"):
        speed_regularizer_from_trajectories(model, traj, anchors="nope")


class _FakeRecall:
    """A task-like object: delayed-recall batches whose answer class is label + 1 (0 = null)."""

    def sample(self, batch_size, generator, split="train"):
        x, labels, ts, ta = _delayed_recall_like(
            B=batch_size, seed=int(torch.randint(0, 999, (1,), generator=generator))
        )
        target = torch.zeros(x.shape[:2], dtype=torch.int64)
        target[torch.arange(batch_size), ta] = labels + 1
        return Batch(x, target, torch.ones(x.shape[:2]), None, {"labels": labels, "ts": ts, "ta": ta})


def test_memory_mask_and_answer_offset():
    batch = _FakeRecall().sample(4, torch.Generator().manual_seed(0))
    mask = memory_mask(batch.info, 8)
    ts, ta = batch.info["ts"], batch.info["ta"]
    for b in range(4):
        assert mask[b].nonzero().flatten().tolist() == list(range(int(ts[b]), int(ta[b])))
    assert answer_offset(batch) == 1
    with pytest.raises(ValueError, match="ts"):
        memory_mask({"labels": batch.info["labels"]}, 8)
    bad = batch._replace(target=batch.target * 2)
    with pytest.raises(ValueError, match="offset"):
        answer_offset(bad)


@pytest.mark.parametrize("kind", ["speed", "trajectory_speed", "anchor_pull"])
def test_task_regularizer_as_a_trainer_extra_loss(kind):
    torch.manual_seed(0)
    model = mnemonet.build("gru", input_size=4, hidden_size=6)
    task = _FakeRecall()
    with pytest.raises(ValueError, match="correct"):  # untrained: no class has a correct trial
        TaskRegularizer(model=model, task=task, kind="speed", num_trials=32)(model)
    extra = TaskRegularizer(
        model=model, task=task, kind=kind, weight=0.1, num_trials=32, num_inputs=4, correct_only=False
    )
    assert extra.needs_states == (kind != "speed")
    batch = task.sample(8, torch.Generator().manual_seed(1))
    logits, _, states = model(batch.x, return_states=True)
    value = extra(model, batch, logits, states)
    assert value.ndim == 0 and value.requires_grad and float(value.detach()) > 0
    value.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    if kind == "anchor_pull":
        # the anchors are the class centres of the model's own trials, held fixed after the first call
        first = extra._term.anchors.clone()
        extra(model, batch, logits.detach(), states.detach())
        torch.testing.assert_close(extra._term.anchors, first)
    zero = TaskRegularizer(model=model, task=task, kind=kind, weight=0.0)(model, batch, logits, states)
    assert float(zero.detach()) == 0.0
    if kind != "speed":
        with pytest.raises(ValueError, match="states"):
            extra(model, batch, logits, None)
    with pytest.raises(ValueError, match="kind"):
        TaskRegularizer(model=model, task=task, kind="other")
