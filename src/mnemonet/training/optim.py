"""Optimisers by name and the learning-rate schedule as a pure function of the step.

The schedule is computed from the step count alone (no scheduler object), so a resumed run needs no
scheduler state to continue exactly. Every schedule starts with an optional linear warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from mnemonet.training.config import OPTIMIZERS, TrainerConfig, _check_choice


def make_optimizer(params: Iterable[nn.Parameter], config: TrainerConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optimizer`` with its learning rate, momentum and weight decay.

    ``"rmsprop"`` is torch's RMSProp with smoothing ``rms_alpha`` and (heavy-ball) ``momentum``;
    ``"sgd"`` uses ``momentum`` too; ``"adagrad"`` and the Adam variants ignore it.
    """
    _check_choice(config.optimizer, "trainer.optimizer", OPTIMIZERS)
    params = list(params)
    wd, lr, eps = config.weight_decay, config.lr, config.eps
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, eps=eps, weight_decay=wd)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, eps=eps, weight_decay=wd)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=lr, alpha=config.rms_alpha, eps=eps, momentum=config.momentum, weight_decay=wd
        )
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    return torch.optim.Adagrad(params, lr=lr, eps=eps, weight_decay=wd)


def lr_at(step: int, config: TrainerConfig) -> float:
    """Learning rate for the update that follows ``step`` completed updates (0-based).

    Schedules (after ``warmup_steps`` of linear warm-up from lr/warmup_steps to lr):

    - ``constant``: lr.
    - ``step``: lr * lr_decay ** floor(step / decay_every), not below min_lr.
    - ``exponential``: lr * lr_decay ** (step / decay_every), not below min_lr.
    - ``cosine``: min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2, p the fraction of post-warm-up steps done.
    - ``linear``: from lr down to min_lr over the post-warm-up steps.
    """
    lr, warm = config.lr, config.warmup_steps
    if step < warm:
        return lr * (step + 1) / warm
    if config.schedule == "constant":
        return lr
    if config.schedule == "step":
        return max(config.min_lr, lr * config.lr_decay ** (step // config.decay_every))
    if config.schedule == "exponential":
        return max(config.min_lr, lr * config.lr_decay ** (step / config.decay_every))
    p = min(1.0, (step - warm) / max(1, config.steps - warm))
    if config.schedule == "cosine":
        return config.min_lr + (lr - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * p))
    return lr + (config.min_lr - lr) * p


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr


__all__ = ["lr_at", "make_optimizer", "set_lr"]
