"""Optimisers by name and the learning-rate schedule against hand-computed values."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from mnemonet.training.config import TrainerConfig
from mnemonet.training.optim import lr_at, make_optimizer


def cfg(**kw) -> TrainerConfig:
    return dataclasses.replace(TrainerConfig(), **kw)


@pytest.mark.parametrize(
    ("name", "cls", "checks"),
    [
        ("adam", torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1}),
        ("adamw", torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
        ("rmsprop", torch.optim.RMSprop, {"lr": 0.01, "momentum": 0.9, "alpha": 0.95}),
        ("sgd", torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}),
        ("adagrad", torch.optim.Adagrad, {"lr": 0.01}),
    ],
)
def test_make_optimizer(name, cls, checks):
    p = torch.nn.Parameter(torch.zeros(3))
    opt = make_optimizer([p], cfg(optimizer=name, lr=0.01, momentum=0.9, rms_alpha=0.95, weight_decay=0.1))
    assert type(opt) is cls
    for key, value in checks.items():
        assert opt.param_groups[0][key] == pytest.approx(value)


def test_rmsprop_momentum_update_matches_hand_computation():
    """Two RMSProp steps with momentum on f(w) = w (gradient 1) against the update rule written out."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer([p], cfg(optimizer="rmsprop", lr=0.1, momentum=0.5, rms_alpha=0.9, eps=1e-8))
    v, buf, w = 0.0, 0.0, 0.0
    for _ in range(2):
        opt.zero_grad()
        p.sum().backward()
        opt.step()
        v = 0.9 * v + 0.1 * 1.0  # v_t = alpha v + (1 - alpha) g^2
        buf = 0.5 * buf + 1.0 / (math.sqrt(v) + 1e-8)  # b_t = mu b + g / (sqrt(v) + eps)
        w -= 0.1 * buf
    assert float(p.detach()) == pytest.approx(w, rel=1e-6)


def test_schedules():
    c = cfg(lr=1.0, steps=110, warmup_steps=10, min_lr=0.1, lr_decay=0.5, decay_every=20)
    assert lr_at(0, c) == pytest.approx(0.1)  # warm-up: (0 + 1) / 10
    assert lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(50, dataclasses.replace(c, schedule="constant")) == 1.0
    assert lr_at(45, dataclasses.replace(c, schedule="step")) == pytest.approx(0.25)  # 0.5 ** (45 // 20)
    assert lr_at(200, dataclasses.replace(c, schedule="step")) == pytest.approx(0.1)  # floored at min_lr
    assert lr_at(30, dataclasses.replace(c, schedule="exponential")) == pytest.approx(0.5**1.5)
    cos = dataclasses.replace(c, schedule="cosine")
    assert lr_at(10, cos) == pytest.approx(1.0)
    assert lr_at(60, cos) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way: cos(pi/2) = 0
    assert lr_at(110, cos) == pytest.approx(0.1)
    lin = dataclasses.replace(c, schedule="linear")
    assert lr_at(60, lin) == pytest.approx(0.55)
