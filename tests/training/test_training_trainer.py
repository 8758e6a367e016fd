"""The trainer on tiny tasks: it learns, clips, evaluates reproducibly, skips NaN steps, stops early,
drives curricula, adds extra losses, and resumes exactly."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch
from _training_tiny import NaNTask, SignRecallTask, StepCurriculum, StreamTask, tiny_model

from mnemonet.training.checkpoint import latest_checkpoint, load_checkpoint
from mnemonet.training.config import EarlyStoppingConfig, TrainerConfig
from mnemonet.training.logging import MetricsLog, read_metrics
from mnemonet.training.trainer import NonFiniteWarning, Trainer, TrainingError


def tcfg(**kw) -> TrainerConfig:
    base = dict(steps=40, batch_size=16, lr=0.02, eval_every=10, eval_batches=2, checkpoint_every=10,
                keep_checkpoints=10, tensorboard=False, progress="off")  # fmt: skip
    return dataclasses.replace(TrainerConfig(), **{**base, **kw})


def params(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_learns_a_memory_task_above_chance():
    task = SignRecallTask(T=4)
    trainer = Trainer(tiny_model(task), task, tcfg(steps=150, eval_every=50))
    before = trainer.evaluate()["accuracy"]
    result = trainer.fit()
    assert result.reason == "finished" and result.step == 150
    assert before < 0.8
    assert result.last["valid_accuracy"] > 0.95  # chance is 0.5


def test_evaluation_sees_the_same_held_out_batches_every_time():
    task = SignRecallTask()
    trainer = Trainer(tiny_model(task), task, tcfg())
    a, b = trainer.evaluate(), trainer.evaluate()
    assert a == b
    assert trainer.evaluate(seed=123) != a
    assert task.samples == 0  # evaluation never touches the training stream


def test_gradient_clipping_limits_the_global_norm():
    """SGD with lr 1 and clip_norm c moves the parameters by exactly c in global norm."""
    task = SignRecallTask()
    model = tiny_model(task)
    trainer = Trainer(model, task, tcfg(optimizer="sgd", lr=1.0, clip_norm=1e-3))
    before = params(model)
    trainer.train_step()
    moved = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(params(model), before, strict=True)))
    assert float(moved) == pytest.approx(1e-3, rel=1e-4)
    assert trainer._grad_norm > 1e-3  # the raw norm was larger: clipping acted


def test_nan_steps_are_skipped_with_a_warning():
    task = NaNTask(bad={2, 3})
    model = tiny_model(task)
    trainer = Trainer(model, task, tcfg(steps=5, max_bad_steps=3))
    trainer.train_step()
    after_first = params(model)
    with pytest.warns(NonFiniteWarning, match="step 2: non-finite loss"):
        trainer.train_step()
    with pytest.warns(NonFiniteWarning, match="2 in a row"):
        trainer.train_step()
    assert all(torch.equal(a, b) for a, b in zip(params(model), after_first, strict=True))  # no update
    trainer.train_step()  # a good batch resets the count and updates
    assert trainer.bad_steps == 0 and trainer.step == 4
    assert not all(torch.equal(a, b) for a, b in zip(params(model), after_first, strict=True))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_too_many_nan_steps_stop_and_keep_the_last_good_checkpoint(tmp_path):
    task = NaNTask(bad=range(12, 100))
    trainer = Trainer(tiny_model(task), task, tcfg(steps=40, max_bad_steps=3), run_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonFiniteWarning)
        with pytest.raises(TrainingError, match=r"step 14: 3 steps in a row .*max_bad_steps=3.*step_00000010\.json"):
            trainer.fit()
    last = latest_checkpoint(tmp_path / "checkpoints")
    assert last.name == "step_00000010.json"
    tensors, state = load_checkpoint(last)
    assert state["step"] == 10 and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_early_stopping_after_patience_evaluations_without_improvement():
    task = SignRecallTask()
    es = EarlyStoppingConfig(patience=2, metric="accuracy", min_delta=2.0)  # nothing can improve by 2
    trainer = Trainer(tiny_model(task), task, tcfg(steps=100, early_stopping=es))
    result = trainer.fit()
    assert result.reason == "early_stopping"
    assert result.step == 30  # best set at 10, no improvement at 20 and 30
    assert result.best_step == 10


def test_curriculum_sees_metrics_and_stage_is_logged(tmp_path):
    task = SignRecallTask()
    cur = StepCurriculum(task, stages=3)
    trainer = Trainer(tiny_model(task), task, tcfg(steps=40), curriculum=cur, run_dir=tmp_path)
    trainer.fit(MetricsLog(tmp_path, tensorboard=False))
    records = read_metrics(tmp_path)
    assert [r["stage"] for r in records] == [0, 1, 2, 2]
    assert records[0]["curriculum"] == "level 0/2"
    assert len(cur.seen) == 4 and "accuracy" in cur.seen[0] and "loss" in cur.seen[0]
    _, state = load_checkpoint(latest_checkpoint(tmp_path / "checkpoints"))
    assert state["curriculum"] == {"stage": 2}


def test_extra_loss_hook_gets_states_and_adds_to_the_loss():
    task = SignRecallTask(T=4)
    seen = {}

    def extra(model, batch, logits, states):
        seen["states"] = tuple(states.shape)
        return 0 * logits.sum() + 100.0

    extra.needs_states = True
    trainer = Trainer(tiny_model(task, hidden=8), task, tcfg(), extra_loss=extra)
    plain = Trainer(tiny_model(task, hidden=8), SignRecallTask(T=4), tcfg())
    assert trainer.train_step() == pytest.approx(plain.train_step() + 100.0, rel=1e-6)
    assert seen["states"] == (16, 4, 8)  # (B, T, S)


def _interrupted(monkeypatch, trainer: Trainer, at: int) -> None:
    """Run ``trainer.fit`` but crash it after step ``at`` (as a kill would, between checkpoints)."""
    real = Trainer.train_step

    def crashing(self):
        if self.step == at:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Trainer, "train_step", crashing)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(MetricsLog(trainer.run_dir, tensorboard=False))
    monkeypatch.setattr(Trainer, "train_step", real)


@pytest.mark.parametrize("kind", ["sign", "stream"])
def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch, kind):
    def make():
        task = SignRecallTask() if kind == "sign" else StreamTask()
        cur = StepCurriculum(task, stages=3) if kind == "sign" else None
        model = tiny_model(task)
        cfg = tcfg(steps=40, optimizer="rmsprop", momentum=0.5, schedule="cosine", lr=0.01)
        return task, cur, model, cfg

    task, cur, model, cfg = make()
    full = Trainer(model, task, cfg, cur, run_dir=tmp_path / "a")
    full.fit(MetricsLog(tmp_path / "a", tensorboard=False))

    task, cur, model, cfg = make()
    first = Trainer(model, task, cfg, cur, run_dir=tmp_path / "b")
    _interrupted(monkeypatch, first, at=25)  # checkpoints at 10 and 20 exist; evals up to 20 logged
    for stale in (tmp_path / "b" / "checkpoints").glob("step_00000020.*"):
        stale.unlink()  # as if killed after logging step 20 but before its checkpoint
    torch.manual_seed(999)  # the resumed process starts from different global RNG state
    task, cur, model, cfg = make()
    second = Trainer(tiny_model(task, seed=5), task, cfg, cur, run_dir=tmp_path / "b")
    assert read_metrics(tmp_path / "b")[-1]["step"] == 20
    assert second.resume(latest_checkpoint(tmp_path / "b" / "checkpoints")) == 10
    assert read_metrics(tmp_path / "b")[-1]["step"] == 10
    second.fit(MetricsLog(tmp_path / "b", tensorboard=False))

    a = (tmp_path / "a" / "metrics.jsonl").read_text()
    b = (tmp_path / "b" / "metrics.jsonl").read_text()
    assert a == b and a.count("\n") == 4
    for p, q in zip(full.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(p, q)
    if kind == "stream":
        assert second.carry is not None and torch.equal(second.carry.h, full.carry.h)


def test_stateful_task_carries_state_and_resets_at_stream_start():
    task = StreamTask(T=3, period=2)
    trainer = Trainer(tiny_model(task), task, tcfg(steps=3))
    trainer.train_step()
    h1 = trainer.carry.h.clone()
    assert not h1.requires_grad and h1.abs().sum() > 0
    captured = []
    real = trainer.net.forward

    def spy(x, state=None, **kw):
        captured.append(None if state is None else state.h.clone())
        return real(x, state, **kw)

    trainer.net.forward = spy
    trainer.train_step()  # continues the stream: starts from the carried state
    trainer.train_step()  # the stream wraps: state reset to zeros
    assert torch.equal(captured[0], h1)
    assert torch.equal(captured[1], torch.zeros_like(h1))


def test_evaluate_skips_nan_metrics_in_the_average():
    task = SignRecallTask()

    class Half(SignRecallTask):
        calls = 0

        def metrics(self, logits, batch):
            Half.calls += 1
            return {"accuracy": math.nan if Half.calls == 1 else 0.5}

    trainer = Trainer(tiny_model(task), Half(), tcfg(eval_batches=3))
    assert trainer.evaluate()["accuracy"] == 0.5


def test_regularizer_by_name_from_the_registry():
    from mnemonet.training.regularizers import _REGISTRY, make_regularizer, register_regularizer

    @register_regularizer("_test_l2")
    def l2(model, task, weight: float = 1.0):
        def extra(model, batch, logits, states):
            return weight * sum((p**2).sum() for p in model.parameters())

        return extra

    try:
        task = SignRecallTask()
        model = tiny_model(task)
        extra = make_regularizer("_test_l2", model, task, weight=0.5)
        expected = 0.5 * sum(float((p.detach() ** 2).sum()) for p in model.parameters())
        assert float(extra(model, None, None, None).detach()) == pytest.approx(expected, rel=1e-6)
        assert make_regularizer(None, model, task) is None
        with pytest.raises(
            ValueError, match=r"regularizer\.name: unknown regularizer '_test_l3'; did you mean '_test_l2'"
        ):
            make_regularizer("_test_l3", model, task)
    finally:
        _REGISTRY.pop("_test_l2")


def test_metrics_hold_the_training_curve_at_the_logging_interval(tmp_path):
    task = SignRecallTask(T=4)
    trainer = Trainer(tiny_model(task), task, tcfg(steps=20, eval_every=10, log_every=2), run_dir=tmp_path)
    trainer.fit(MetricsLog(tmp_path, tensorboard=False))
    records = read_metrics(tmp_path)
    assert [[s for s, _ in r["train_curve"]] for r in records] == [[2, 4, 6, 8, 10], [12, 14, 16, 18, 20]]
    for r in records:  # each curve point is the mean of 2 step losses: together they average to train_loss
        assert sum(v for _, v in r["train_curve"]) / 5 == pytest.approx(r["train_loss"], rel=1e-12)
    assert len({v for r in records for _, v in r["train_curve"]}) == 10  # the curve moves


def test_training_curve_survives_a_resume_between_log_steps(tmp_path, monkeypatch):
    cfg = tcfg(steps=20, eval_every=10, log_every=4, checkpoint_every=5)
    task = SignRecallTask(T=4)
    whole = Trainer(tiny_model(task), task, cfg, run_dir=tmp_path / "a")
    whole.fit(MetricsLog(tmp_path / "a", tensorboard=False))
    task = SignRecallTask(T=4)
    first = Trainer(tiny_model(task), task, cfg, run_dir=tmp_path / "b")
    _interrupted(monkeypatch, first, at=7)  # last checkpoint at step 5: between log steps 4 and 8
    task = SignRecallTask(T=4)
    second = Trainer(tiny_model(task), task, cfg, run_dir=tmp_path / "b")
    assert second.resume(latest_checkpoint(tmp_path / "b" / "checkpoints")) == 5
    second.fit(MetricsLog(tmp_path / "b", tensorboard=False))
    assert read_metrics(tmp_path / "b") == read_metrics(tmp_path / "a")
    assert [s for s, _ in read_metrics(tmp_path / "a")[0]["train_curve"]] == [4, 8]
