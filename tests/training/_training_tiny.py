"""Tiny tasks and models for the trainer tests: known answers, milliseconds per step.

``SignRecallTask`` needs memory: the sign shown at step 0 must be reported at the last step.
``StreamTask`` is stateful (consecutive chunks of one periodic stream), for truncated BPTT.
``NaNTask`` poisons chosen training batches with NaN inputs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mnemonet.models.readout import Readout
from mnemonet.models.registry import build
from mnemonet.tasks.base import Batch, Curriculum, Task


class SignRecallTask(Task):
    """x `[B, T, 2]`: channel 0 holds ±1 at t = 0 (noise elsewhere), channel 1 a trigger at T-1.

    target: class 1 (sign > 0) or 2 (sign < 0) at T-1, class 0 elsewhere; only T-1 is scored.
    """

    name = "sign_recall"
    input_size = 2
    output_size = 3
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(self, T: int = 5, noise: float = 0.1) -> None:
        self.T = T
        self.noise = noise
        self.samples = 0

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        B, T = batch_size, self.T
        sign = torch.randint(0, 2, (B,), generator=generator) * 2 - 1
        x = self.noise * torch.randn(B, T, 2, generator=generator)
        x[:, 0, 0] = sign.float()
        x[:, :, 1] = 0.0
        x[:, -1, 1] = 1.0
        target = torch.zeros(B, T, dtype=torch.int64)
        target[:, -1] = torch.where(sign > 0, 1, 2)
        weight = torch.zeros(B, T)
        weight[:, -1] = 1.0
        if split == "train":
            self.samples += 1
        return Batch(x, target, weight)

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(logits[:, -1], batch.target[:, -1])

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        return {"accuracy": float((logits[:, -1].argmax(-1) == batch.target[:, -1]).float().mean())}

    def state_dict(self) -> dict[str, Any]:
        return {"samples": self.samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.samples = int(state["samples"])


class NaNTask(SignRecallTask):
    """SignRecallTask whose training batches number ``bad`` (1-based) carry NaN inputs."""

    def __init__(self, bad: set[int] | range, T: int = 5) -> None:
        super().__init__(T)
        self.bad = set(bad)

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        batch = super().sample(batch_size, generator, split)
        if split == "train" and self.samples in self.bad:
            batch.x[:, 1, 0] = float("nan")
        return batch


class StreamTask(Task):
    """Predict the next symbol of the periodic stream 0, 1, ..., V-1, 0, 1, ... read in chunks of T.

    Each of the B streams starts at a different offset; positions advance by T per batch and wrap after
    ``period`` chunks (``info["start"]`` marks the wrap), so the carried state matters.
    """

    name = "stream"
    input_size = 4
    output_size = 4
    primary_metric = "loss_bits"
    higher_is_better = False
    stateful = True

    def __init__(self, T: int = 3, period: int = 4) -> None:
        self.T = T
        self.period = period
        self.pos = {"train": 0, "valid": 0, "test": 0}

    def reset(self, split: str | None = None) -> None:
        for s in self.pos if split is None else (split,):
            self.pos[s] = 0

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        p = self.pos[split]
        self.pos[split] = (p + 1) % self.period
        V, T = self.input_size, self.T
        t = torch.arange(T + 1)[None] + p * T + torch.arange(batch_size)[:, None]  # (B, T+1)
        seq = t % V
        x = F.one_hot(seq[:, :T], V).float()  # (B, T, V)
        start = torch.full((batch_size,), p == 0, dtype=torch.bool)
        return Batch(x, seq[:, 1:], torch.ones(batch_size, T), None, {"start": start})

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.target.reshape(-1))

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        return {"loss_bits": float(self.loss(logits, batch)) / 0.6931471805599453}

    def state_dict(self) -> dict[str, Any]:
        return {"pos": dict(self.pos)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos = {k: int(v) for k, v in state["pos"].items()}


class StepCurriculum(Curriculum):
    """Advances one stage per evaluation, up to ``stages - 1``; records what it saw."""

    def __init__(self, task: Task, stages: int = 3) -> None:
        self.task = task
        self.stages = stages
        self.stage = 0
        self.seen: list[dict[str, float]] = []

    def observe(self, metrics: dict[str, float]) -> bool:
        self.seen.append(dict(metrics))
        if self.finished:
            return False
        self.stage += 1
        return True

    @property
    def finished(self) -> bool:
        return self.stage >= self.stages - 1

    def describe(self) -> str:
        return f"level {self.stage}/{self.stages - 1}"

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage = int(state["stage"])


def tiny_model(task: Task, hidden: int = 8, seed: int = 0, name: str = "gru") -> Readout:
    """A seeded GRU (or other registered cell) with a linear readout sized for ``task``."""
    torch.manual_seed(seed)
    return Readout(build(name, input_size=task.input_size, hidden_size=hidden), task.output_size)
