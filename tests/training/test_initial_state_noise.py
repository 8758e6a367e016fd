"""trainer.initial_state_noise: Gaussian noise on the initial state (Cooijmans et al. 2017, section 5.1)."""

from __future__ import annotations

import math

import pytest
import torch

from mnemonet.models.readout import Readout
from mnemonet.models.registry import build
from mnemonet.tasks import make_task
from mnemonet.training.config import load_config
from mnemonet.training.trainer import Trainer, noisy_initial_state

SMNIST_BN_LSTM = ("bn_lstm_smnist", "bn_lstm_smnist-small")


@pytest.mark.parametrize("preset", SMNIST_BN_LSTM)
def test_the_smnist_bn_lstm_presets_add_noise(preset):
    assert load_config(preset).trainer.initial_state_noise > 0


def _grad_norm(model: torch.nn.Module, x: torch.Tensor, state) -> float:
    model.zero_grad()
    y, _ = model(x, state)
    y[:, -1].pow(2).sum().backward()
    return math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None))


def test_noise_keeps_gradients_finite_after_112_constant_leading_steps_at_the_preset_sizes():
    config = load_config("bn_lstm_smnist")
    torch.manual_seed(0)
    model = build(config.model.name, input_size=1, **config.model.kwargs)  # 100 units, statistics over 784 steps
    x = torch.cat([torch.zeros(16, 112, 1), torch.rand(16, 8, 1)], dim=1)  # black first pixels, as in MNIST
    assert not math.isfinite(_grad_norm(model, x, None))  # h0 = 0: every batch norm sees zero variance
    noisy = noisy_initial_state(model, x, config.trainer.initial_state_noise, torch.Generator().manual_seed(0))
    assert math.isfinite(_grad_norm(model, x, noisy))


def test_noise_has_the_given_spread_on_every_floating_state_tensor():
    model = build("lstm", input_size=3, hidden_size=50)
    x = torch.zeros(2000, 1, 3)
    state = noisy_initial_state(model, x, 0.1, torch.Generator().manual_seed(0))
    for leaf in state:
        assert leaf.shape == (2000, 50)
        assert float(leaf.mean()) == pytest.approx(0.0, abs=2e-3)
        assert float(leaf.std()) == pytest.approx(0.1, rel=0.02)


def test_the_trainer_uses_noise_in_training_only():
    task = make_task("copy", bits=3, length_range=(2, 3), test_length_range=(4, 5))
    losses, evals = [], []
    for noise in (0.0, 0.5):
        config = load_config({"model": {"name": "gru"}}, [f"trainer.initial_state_noise={noise}"]).trainer
        torch.manual_seed(0)
        model = Readout(build("gru", input_size=task.input_size, hidden_size=8), task.output_size)
        trainer = Trainer(model, task, config, progress="off")
        evals.append(trainer.evaluate("valid", batches=1))
        losses.append(trainer.train_step())
    assert losses[0] != losses[1]
    assert evals[0] == evals[1]
