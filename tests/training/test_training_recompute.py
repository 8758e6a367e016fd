"""trainer.recompute_statistics: BN-LSTM population statistics re-estimated before held-out evaluation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from _training_tiny import SignRecallTask

from mnemonet.models import Readout, build
from mnemonet.models.bn_lstm import BNLSTMCell
from mnemonet.training.config import ConfigError, TrainerConfig
from mnemonet.training.trainer import Trainer


def tcfg(**kw) -> TrainerConfig:
    base = dict(steps=10, batch_size=16, eval_batches=2, tensorboard=False, progress="off")
    return dataclasses.replace(TrainerConfig(), **{**base, **kw})


def bn_model(task) -> Readout:
    torch.manual_seed(0)
    return Readout(build("bn_lstm", input_size=task.input_size, hidden_size=6, max_length=8), task.output_size)


def running_means(model) -> torch.Tensor:
    cell = next(m for m in model.modules() if isinstance(m, BNLSTMCell))
    return torch.cat([b.flatten() for name, b in cell.named_buffers() if "mean" in name])


def test_evaluation_re_estimates_statistics_from_its_own_generator():
    task = SignRecallTask(T=4)
    trainer = Trainer(bn_model(task), task, tcfg(recompute_statistics=3))
    for _ in range(5):
        trainer.train_step()  # running averages move by momentum
    before = running_means(trainer.model).clone()
    stream = trainer.generator.get_state()
    metrics = trainer.evaluate()
    assert torch.equal(trainer.generator.get_state(), stream)  # the training stream is untouched
    after = running_means(trainer.model)
    assert not torch.equal(before, after)
    # equal to re-estimating by hand over the same three batches
    gen = torch.Generator().manual_seed(trainer.config.seed + 4_000_037 + trainer.step)
    manual = bn_model(task)
    manual.load_state_dict(trainer.model.state_dict())
    manual.reestimate_statistics([task.sample(16, gen, "train") for _ in range(3)])
    torch.testing.assert_close(running_means(manual), after)
    assert trainer.evaluate() == metrics  # deterministic


def test_off_by_default_leaves_running_averages():
    task = SignRecallTask(T=4)
    trainer = Trainer(bn_model(task), task, tcfg())
    for _ in range(5):
        trainer.train_step()
    before = running_means(trainer.model).clone()
    trainer.evaluate()
    assert torch.equal(before, running_means(trainer.model))


def test_model_without_batch_norm_gives_a_config_error():
    task = SignRecallTask(T=4)
    model = Readout(build("gru", input_size=task.input_size, hidden_size=4), task.output_size)
    trainer = Trainer(model, task, tcfg(recompute_statistics=2))
    with pytest.raises(ConfigError, match=r"recompute_statistics: model: expected a module with population"):
        trainer.evaluate()
