"""Moving digits: bounces at known frames (deterministic and stochastic), rendering, the sequence layout,
seeded reproducibility, MNIST at 64x64 from a local folder, and the per-step metrics against a loop."""

import pytest
import torch
import torch.nn.functional as F

from mnemonet.tasks.moving_digits import MovingDigitsTask, bounce, render


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_bounce_off_the_right_wall_at_a_known_frame():
    # limit 24 (canvas 32, digit 8): from column 20 at +2 px/frame the digit reaches 24 at frame 2, then turns
    path = bounce((5, 20), (0, 2), 6, limit=24)
    assert path[:, 1].tolist() == [20, 22, 24, 22, 20, 18]
    assert path[:, 0].tolist() == [5] * 6
    # overshoot is mirrored: from 23 at +3 -> 26 -> mirrored to 22 at frame 1
    assert bounce((0, 23), (1, 3), 3, limit=24).tolist() == [[0, 23], [1, 22], [2, 19]]
    # the top wall: row 1 moving -2 -> -1 mirrored to 1
    assert bounce((1, 0), (-2, 0), 3, limit=24)[:, 0].tolist() == [1, 1, 3]


def test_rendered_digit_touches_the_wall_at_the_bounce_frame():
    digit = torch.ones(1, 8, 8)
    positions = bounce((0, 20), (0, 2), 4, limit=24)[:, None]  # (F, 1, 2)
    frames = render(digit, positions, 32)
    right_column = frames[:, :, 31].sum(dim=1)  # lit pixels in the last column, per frame
    assert right_column.tolist() == [0.0, 0.0, 8.0, 0.0]
    assert frames.sum(dim=(1, 2)).tolist() == [64.0] * 4


def test_render_overlap_is_the_maximum():
    digits = torch.stack([torch.full((2, 2), 0.3), torch.full((2, 2), 0.8)])
    frames = render(digits, torch.tensor([[[0, 0], [1, 1]]]), 4)
    assert frames[0, 1, 1] == pytest.approx(0.8) and frames[0, 0, 0] == pytest.approx(0.3)
    assert frames[0, 2, 2] == pytest.approx(0.8) and frames[0, 3, 3] == 0


def test_stochastic_bounce_keeps_the_path_until_the_first_bounce_then_moves_away():
    for seed in range(20):
        det = bounce((3, 10), (2, -3), 30, limit=24)
        sto = bounce((3, 10), (2, -3), 30, limit=24, stochastic=True, max_speed=3, generator=gen(seed))
        assert int(sto.min()) >= 0 and int(sto.max()) <= 24
        assert torch.equal(det[:4], sto[:4])  # the first bounce (column 10 -> 7 -> 4 -> 1 -> 2) is at frame 4
        step = sto[5, 1] - sto[4, 1]
        assert 1 <= int(step) <= 3  # after hitting the left wall it moves right, 1..3 px per frame
    assert any(not torch.equal(det, bounce((3, 10), (2, -3), 30, 24, True, 3, gen(s))) for s in range(5))


def test_bounce_checks_arguments():
    with pytest.raises(ValueError, match="position"):
        bounce((30, 0), (1, 1), 3, limit=24)
    with pytest.raises(ValueError, match="velocity"):
        bounce((0, 0), (30, 1), 3, limit=24)


def test_layout_targets_are_the_next_frames_and_flags_mark_observed_steps():
    task = MovingDigitsTask(canvas=32, num_digits=(1, 2), frames=8, observed=3)
    batch = task.sample(5, gen(1))
    P = 32 * 32
    assert batch.x.shape == (5, 7, P + 1) and batch.target.shape == (5, 7, P) and batch.weight.shape == (5, 7)
    frames = batch.info["frames"].reshape(5, 8, P)
    assert torch.equal(batch.target, frames[:, 1:])
    assert torch.equal(batch.x[:, :3, :P], frames[:, :3]) and batch.x[:, 3:, :P].abs().sum() == 0
    assert batch.x[:, :, P].tolist() == [[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]] * 5
    assert torch.equal(batch.weight, torch.ones(5, 7))
    assert task.rollout_steps == 5
    pos = batch.info["positions"]  # (B, F, 2, 2) centres in [0, 1], -1 for an absent second digit
    present = pos[..., 0] >= 0
    assert bool((pos[present] <= 1).all()) and bool(present[:, :, 0].all())
    assert torch.equal(present[:, 0], batch.info["labels"] >= 0)
    skipped = MovingDigitsTask(canvas=32, frames=8, observed=3, score_observed=False).sample(2, gen(1))
    assert skipped.weight[0].tolist() == [0, 0, 1, 1, 1, 1, 1]


def test_centres_follow_the_rendered_digit():
    task = MovingDigitsTask(canvas=32, num_digits=1, frames=6, observed=2)
    batch = task.sample(3, gen(4))
    rows = torch.arange(32).float()
    for b in range(3):
        for f in range(6):
            frame = batch.info["frames"][b, f]
            lit_rows = rows[frame.sum(1) > 0]
            centre_row = float(batch.info["positions"][b, f, 0, 0]) * 32
            assert float(lit_rows.min()) >= centre_row - 4 - 1e-4 and float(lit_rows.max()) <= centre_row + 4


def test_seeded_reproducibility():
    task = MovingDigitsTask(canvas=32, frames=6, observed=2, stochastic=True)
    a, b, c = task.sample(4, gen(3)), task.sample(4, gen(3)), task.sample(4, gen(4))
    assert torch.equal(a.x, b.x) and torch.equal(a.info["positions"], b.info["positions"])
    assert not torch.equal(a.x, c.x)


def test_mnist_from_a_local_folder_at_64(tmp_path, mnist_folder):
    mnist_folder(tmp_path, n_train=12, n_test=4)
    task = MovingDigitsTask(canvas=64, num_digits=2, frames=4, observed=2, source="mnist", mnist_path=tmp_path)
    batch = task.sample(2, gen(0), split="test")
    assert task.digit_size == 28 and batch.x.shape == (2, 3, 64 * 64 + 1)
    assert batch.info["frames"].shape == (2, 4, 64, 64)


def test_metrics_per_step_against_a_loop():
    task = MovingDigitsTask(canvas=16, num_digits=1, frames=7, observed=3)
    batch = task.sample(4, gen(2))
    logits = torch.randn(4, 6, 256, generator=gen(9))
    metrics = task.metrics(logits, batch)
    for j in range(1, 5):  # predicted frame f_{k-1+j} is step t = k-2+j
        t = 3 - 2 + j
        bce = F.binary_cross_entropy_with_logits(logits[:, t], batch.target[:, t])
        mse = (torch.sigmoid(logits[:, t]) - batch.target[:, t]).pow(2).mean()
        assert metrics[f"rollout_bce_{j}"] == pytest.approx(float(bce), rel=1e-5)
        assert metrics[f"rollout_mse_{j}"] == pytest.approx(float(mse), rel=1e-5)
    assert "rollout_bce_5" not in metrics
    exact = torch.logit(batch.target.clamp(1e-6, 1 - 1e-6))
    assert task.metrics(exact, batch)["rollout_mse"] < 1e-9


def test_argument_errors():
    with pytest.raises(ValueError, match="frames"):
        MovingDigitsTask(frames=3, observed=3)
    with pytest.raises(ValueError, match="digit_size"):
        MovingDigitsTask(canvas=8)
    with pytest.raises(ValueError, match="num_digits"):
        MovingDigitsTask(num_digits=(2, 1))
