"""The training loop: any model, any task, one config; seeded, resumable, NaN-safe, DDP-ready.

The trainer knows a model only as ``forward(x, state, lengths) -> (logits, state)`` and a task only
through :class:`~mnemonet.tasks.base.Task`. One step draws a batch from the training generator,
adds the optional extra loss, back-propagates, clips the global gradient norm and updates. Every
``eval_every`` steps it evaluates on held-out batches drawn from a generator re-seeded identically
for every evaluation, appends one record to ``metrics.jsonl`` (with the mean training loss of every ``log_every``
steps since the last one, ``train_curve``), lets the curriculum advance, and
checks early stopping; every ``checkpoint_every`` steps it writes a checkpoint from which
:meth:`Trainer.load` resumes bit-for-bit on CPU.

A step whose loss or gradient norm is NaN/Inf is skipped (no update) with a
:class:`NonFiniteWarning`; ``max_bad_steps`` such steps in a row stop training with a
:class:`TrainingError`, before any checkpoint of the bad state is written.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mnemonet.errors import TrainingError
from mnemonet.models import state as st
from mnemonet.tasks.base import Batch, Curriculum, Task
from mnemonet.training import distributed
from mnemonet.training.checkpoint import (
    CheckpointError,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    pack,
    prune_checkpoints,
    save_checkpoint,
    unpack,
)
from mnemonet.training.config import ConfigError, TrainerConfig
from mnemonet.training.logging import METRICS_FILE, MetricsLog, truncate_metrics
from mnemonet.training.optim import lr_at, make_optimizer, set_lr
from mnemonet.training.progress import Progress
from mnemonet.training.regularizers import ExtraLoss
from mnemonet.training.signals import SIGNALS, StopSignals

EVAL_SEEDS = {"valid": 1_000_003, "test": 2_000_003, "train": 3_000_017}
RECOMPUTE_SEED = 4_000_037  # offset of the generator that draws batches for re-estimating BN statistics
_LOWER_IS_BETTER = ("loss", "error", "bpc", "perplexity", "cost", "nll")


class NonFiniteWarning(RuntimeWarning):
    """A training step had a NaN or infinite loss or gradient and was skipped."""


class ResumeWarning(UserWarning):
    """Something of a checkpoint could not carry over to the resumed run (e.g. another optimiser's state)."""


@dataclass
class FitResult:
    """How a :meth:`Trainer.fit` ended.

    Attributes:
        step: the last completed step.
        reason: ``"finished"`` (all steps done), ``"early_stopping"`` or ``"interrupted"`` (a signal; a
            checkpoint of the last step was written and ``--resume`` continues exactly).
        best: best validation value of the early-stopping metric at the final curriculum stage.
        best_step: the step at which it was reached.
        last: the last metrics record.
        signal: the signal's number when interrupted, else None.
    """

    step: int
    reason: str
    best: float | None
    best_step: int | None
    last: dict[str, Any] = field(default_factory=dict)
    signal: int | None = None


def lower_is_better(metric: str, task: Task) -> bool:
    """Direction of a metric: the task's own for its primary metric, else guessed from the name."""
    if metric == task.primary_metric:
        return not task.higher_is_better
    return any(word in metric for word in _LOWER_IS_BETTER)


def _detach(state: Any) -> Any:
    return st.tree_map(lambda t: t.detach(), state)


class Trainer:
    """Train ``model`` on ``task``.

    Args:
        model: a recurrent model whose forward maps x `[B, T, input_size]` to (logits `[B, T, output_size]`,
            state); moved to ``device``.
        task: the task.
        config: the trainer section of the run config.
        curriculum: optional curriculum driving ``task``.
        run_dir: the run folder (metrics, TensorBoard, checkpoints); None keeps everything in memory.
        device: where to train (default CPU).
        extra_loss: optional extra loss term (see :mod:`mnemonet.training.regularizers`).
        progress: progress mode overriding ``config.progress`` (``"off"`` in library use is common).
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        config: TrainerConfig,
        curriculum: Curriculum | None = None,
        run_dir: str | Path | None = None,
        device: torch.device | str = "cpu",
        extra_loss: ExtraLoss | None = None,
        progress: str | None = None,
    ) -> None:
        self.config = config
        self.task = task
        self.curriculum = curriculum
        self.device = torch.device(device)
        self.rank = distributed.env_info().rank if distributed.active() else 0
        self.world_size = distributed.env_info().world_size if distributed.active() else 1
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.model = model.to(self.device)
        self.net = distributed.wrap(self.model, self.device, config.find_unused_parameters)
        self.optimizer = make_optimizer(self.model.parameters(), config)
        self.extra_loss = extra_loss
        self.progress_mode = progress or config.progress
        if not self.is_main:
            self.progress_mode = "off"
        self.generator = torch.Generator().manual_seed(config.seed + self.rank)
        self.metric = config.early_stopping.metric or task.primary_metric
        self.minimize = lower_is_better(self.metric, task)
        self.step = 0
        self.bad_steps = 0
        self.best: float | None = None
        self.best_step: int | None = None
        self.evals_since_best = 0
        self.stopped: str | None = None
        self.carry: Any = None
        self.last_record: dict[str, Any] = {}
        self._loss_sum = 0.0
        self._loss_count = 0
        self._log_sum, self._log_count = 0.0, 0  # losses since the last logging step
        self._train_curve: list[list[float]] = []  # [step, mean loss over the log interval] since the last eval
        self._log: MetricsLog | None = None
        self._grad_norm = float("nan")

    @property
    def is_main(self) -> bool:
        """True on the process that writes the run folder (rank 0)."""
        return self.rank == 0

    @property
    def checkpoint_dir(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoints"

    # ------------------------------------------------------------------------------------------
    # one step
    # ------------------------------------------------------------------------------------------

    def _forward(self, net: nn.Module, batch: Batch, state: Any, with_states: bool) -> tuple[Tensor, Any, Any]:
        if with_states:
            logits, new_state, states = net(batch.x, state, lengths=batch.lengths, return_states=True)
            return logits, new_state, states
        logits, new_state = net(batch.x, state, lengths=batch.lengths)
        return logits, new_state, None

    def _carried_state(self, batch: Batch, state: Any) -> Any:
        """The carried state for a stateful task, reset where a batch starts its stream anew."""
        if state is None:
            return None
        start = batch.info.get("start")
        if start is None or not bool(start.any()):
            return state
        fresh = self.model.initial_state(batch.x.shape[0], device=self.device, dtype=batch.x.dtype)
        return st.tree_where(start.to(self.device), fresh, state)

    def train_step(self) -> float:
        """One training step (or a skipped one); returns the loss (NaN/Inf when skipped for that reason)."""
        cfg = self.config
        lr = lr_at(self.step, cfg)
        set_lr(self.optimizer, lr)
        if self.curriculum is not None and self.curriculum.at_step(self.step, cfg.steps):
            self.best, self.best_step, self.evals_since_best = None, None, 0  # a new stage, as after observe
        batch = self.task.sample(cfg.batch_size, self.generator, "train").to(self.device)
        self.net.train()
        state = self._carried_state(batch, self.carry) if self.task.stateful else None
        if state is None and cfg.initial_state_noise > 0:
            state = noisy_initial_state(self.model, batch.x, cfg.initial_state_noise, self.generator)
        with_states = bool(getattr(self.extra_loss, "needs_states", False))
        logits, new_state, states = self._forward(self.net, batch, state, with_states)
        loss = self.task.loss(logits, batch)
        if self.extra_loss is not None:
            loss = loss + self.extra_loss(self.model, batch, logits, states)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = cfg.clip_norm if cfg.clip_norm is not None else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        loss_value = float(loss.detach())
        finite = distributed.all_true(math.isfinite(loss_value) and math.isfinite(grad_norm), self._comm_device)
        self._grad_norm = grad_norm
        self.step += 1
        if finite:
            self.optimizer.step()
            self.bad_steps = 0
            if self.task.stateful:
                self.carry = _detach(new_state)
            return loss_value
        self.optimizer.zero_grad(set_to_none=True)
        self.bad_steps += 1
        self.carry = None
        warnings.warn(
            f"step {self.step}: non-finite loss ({loss_value}) or gradient norm ({grad_norm}); step skipped "
            f"({self.bad_steps} in a row, stopping at {cfg.max_bad_steps})",
            NonFiniteWarning,
            stacklevel=2,
        )
        if self.bad_steps >= cfg.max_bad_steps:
            where = ""
            if self.checkpoint_dir is not None:
                last = latest_checkpoint(self.checkpoint_dir)
                where = f"; the last good checkpoint is {last}" if last else "; no checkpoint was written yet"
            raise TrainingError(
                f"training stopped at step {self.step}: {self.bad_steps} steps in a row had a NaN or infinite "
                f"loss or gradient (trainer.max_bad_steps={cfg.max_bad_steps}). Try a lower trainer.lr or a "
                f"trainer.clip_norm{where}"
            )
        return loss_value

    @property
    def _comm_device(self) -> torch.device | None:
        return self.device if self.device.type == "cuda" else None

    # ------------------------------------------------------------------------------------------
    # evaluation
    # ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(
        self, split: str = "valid", batches: int | None = None, batch_size: int | None = None, seed: int | None = None
    ) -> dict[str, float]:
        """Mean loss and task metrics over ``batches`` held-out batches.

        The batches come from a generator seeded with ``seed`` (default: the run seed plus a fixed
        per-split offset), so every evaluation of a run sees the same data. Stateful tasks read a held-out
        split from its start (their ``reset(split)``), carrying the model state across the batches.

        Returns:
            ``{"loss": ..., **task.metrics}``, each averaged over batches (NaN values skipped).
        """
        cfg = self.config
        batches = batches or cfg.eval_batches
        batch_size = batch_size or cfg.eval_batch_size or cfg.batch_size
        seed = cfg.seed + EVAL_SEEDS.get(split, 0) if seed is None else seed
        gen = torch.Generator().manual_seed(seed)
        if self.task.stateful and hasattr(self.task, "reset") and split != "train":
            self.task.reset(split)  # every evaluation reads the held-out stream from its start
        if cfg.recompute_statistics and split != "train":
            self._recompute_statistics()
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        state = None
        try:
            for _ in range(batches):
                batch = self.task.sample(batch_size, gen, split).to(self.device)
                if self.task.stateful:
                    state = self._carried_state(batch, state)
                logits, new_state = self.model(batch.x, state, lengths=batch.lengths)
                if self.task.stateful:
                    state = new_state
                values = {"loss": float(self.task.loss(logits, batch)), **self.task.metrics(logits, batch)}
                for key, value in values.items():
                    if math.isfinite(value):
                        sums[key] = sums.get(key, 0.0) + float(value)
                        counts[key] = counts.get(key, 0) + 1
                    else:
                        sums.setdefault(key, 0.0)
                        counts.setdefault(key, 0)
        finally:
            self.model.train(was_training)
        return {k: (sums[k] / counts[k] if counts[k] else float("nan")) for k in sums}

    def _recompute_statistics(self) -> None:
        """Re-estimate batch-norm population statistics over ``recompute_statistics`` training batches.

        The batches come from their own generator (seeded by the run seed and the step), so the
        training stream and exact resume are unaffected.
        """
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed + RECOMPUTE_SEED + self.step)
        batches = (
            self.task.sample(cfg.batch_size, gen, "train").to(self.device) for _ in range(cfg.recompute_statistics)
        )
        reestimate = getattr(self.model, "reestimate_statistics", None)  # the protocol: any model may offer it
        try:
            if reestimate is None:
                raise ValueError(f"model: expected a model with reestimate_statistics, got {type(self.model).__name__}")
            reestimate(batches)
        except ValueError as err:
            raise ConfigError(f"trainer.recompute_statistics: {err} (set it to 0 for this model)") from None

    def _evaluate_and_record(self, progress: Progress) -> dict[str, Any]:
        metrics = self.evaluate("valid")
        record: dict[str, Any] = {"step": self.step, "lr": lr_at(self.step - 1, self.config)}
        if self._loss_count:
            record["train_loss"] = self._loss_sum / self._loss_count
        if self._train_curve:
            record["train_curve"] = self._train_curve
            self._train_curve = []
        record.update({f"valid_{k}": v for k, v in metrics.items()})
        stage_text = None
        if self.curriculum is not None:
            record["stage"] = int(self.curriculum.stage)
            stage_text = self.curriculum.describe()
            record["curriculum"] = stage_text
        self._loss_sum, self._loss_count = 0.0, 0
        if self._log is not None:
            self._log.record(record)
        progress.evaluated(self.step, record, stage_text)
        self.last_record = record
        self._track_best(metrics)
        if self.curriculum is not None and self.curriculum.observe(metrics):
            self.best, self.best_step, self.evals_since_best = None, None, 0
            progress.message(f"step {self.step}: curriculum advanced to {self.curriculum.describe()}")
        return record

    def _track_best(self, metrics: dict[str, float]) -> None:
        """Update the best value; save the ``best`` weights; decide on early stopping."""
        if self.metric not in metrics:
            raise TrainingError(
                f"trainer.early_stopping.metric: {self.metric!r} is not among the task's metrics {sorted(metrics)}"
            )
        value = metrics[self.metric]
        if not math.isfinite(value):
            return
        es = self.config.early_stopping
        delta = es.min_delta
        better = self.best is None or (value < self.best - delta if self.minimize else value > self.best + delta)
        if better:
            self.best, self.best_step, self.evals_since_best = value, self.step, 0
            self._save_best()
        else:
            self.evals_since_best += 1
        at_last_stage = self.curriculum is None or self.curriculum.finished
        if es.patience is not None and at_last_stage and self.evals_since_best >= es.patience:
            self.stopped = "early_stopping"

    # ------------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------------

    def fit(self, log: MetricsLog | None = None, handle_signals: bool = False) -> FitResult:
        """Train until ``config.steps`` (or early stopping), evaluating, logging and checkpointing.

        Checkpoints are written every ``checkpoint_every`` steps, at the end, and, with
        ``checkpoint_minutes``, whenever that much time has passed since the last one.

        Args:
            log: where metrics go (``metrics.jsonl``, TensorBoard); None writes nothing.
            handle_signals: catch SIGTERM / SIGINT (:class:`~mnemonet.training.signals.StopSignals`): the
                first finishes the current step, writes a checkpoint and returns with reason
                ``"interrupted"``; a second exits the process at once.
        """
        cfg = self.config
        self._log = log if self.is_main else None
        started = time.perf_counter()
        start_step = self.step
        interrupted = False
        last_save = time.monotonic()
        signals = StopSignals(handle_signals)
        with signals, Progress(cfg.steps, self.step, self.progress_mode, self.task.primary_metric) as progress:
            while self.step < cfg.steps and self.stopped is None:
                loss = self.train_step()
                if math.isfinite(loss):
                    self._loss_sum += loss
                    self._loss_count += 1
                    self._log_sum += loss
                    self._log_count += 1
                if self.step % cfg.log_every == 0:
                    if self._log_count:  # the training curve at the logging interval, in metrics.jsonl
                        self._train_curve.append([self.step, self._log_sum / self._log_count])
                    self._log_sum, self._log_count = 0.0, 0
                if self._log is not None and self.step % cfg.log_every == 0:
                    self._log.scalar("train/loss_step", loss, self.step)
                    self._log.scalar("train/lr", lr_at(self.step - 1, cfg), self.step)
                    self._log.scalar("train/grad_norm", self._grad_norm, self.step)
                    rate = (self.step - start_step) / max(1e-9, time.perf_counter() - started)
                    self._log.scalar("train/steps_per_second", rate, self.step)
                progress.step(self.step, loss)
                if self.step % cfg.eval_every == 0 or self.step == cfg.steps:
                    self._evaluate_and_record(progress)
                interrupted = self._agree(signals.requested)
                due = cfg.checkpoint_minutes is not None and self._agree(
                    time.monotonic() - last_save >= 60 * cfg.checkpoint_minutes
                )
                if (
                    self.step % cfg.checkpoint_every == 0
                    or self.step == cfg.steps
                    or self.stopped
                    or interrupted
                    or due
                ):
                    self.save()
                    last_save = time.monotonic()
                if interrupted:
                    progress.message(f"stopped by {signals.name or 'a signal'} at step {self.step}; checkpoint written")
                    break
            if self.stopped == "early_stopping":
                progress.message(
                    f"early stopping at step {self.step}: {self.metric} has not improved for "
                    f"{cfg.early_stopping.patience} evaluations (best {self.best:.4g} at step {self.best_step})"
                )
        if self._log is not None:
            self._log.flush()
        if interrupted:
            signum = signals.signum or int(SIGNALS[-1])  # a rank that got none stops with its peers (SIGTERM)
            return FitResult(self.step, "interrupted", self.best, self.best_step, self.last_record, signum)
        return FitResult(self.step, self.stopped or "finished", self.best, self.best_step, self.last_record)

    def _agree(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank (the flag itself without DDP)."""
        if not distributed.active():
            return flag
        return not distributed.all_true(not flag, self._comm_device)

    # ------------------------------------------------------------------------------------------
    # checkpoints
    # ------------------------------------------------------------------------------------------

    def state_tensors_and_json(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Everything needed to resume: named tensors and a JSON-able dict (see :mod:`.checkpoint`).

        Collective under DDP (every rank's RNG states are gathered), so call it on every rank.
        """
        tensors: dict[str, Tensor] = {}
        for name, value in self.model.state_dict().items():
            tensors[f"model.{name}"] = value.detach().to("cpu").clone().contiguous()
        rng = {
            "torch": distributed.gather(torch.get_rng_state().to(self._comm_device or "cpu")),
            "generator": distributed.gather(self.generator.get_state().to(self._comm_device or "cpu")),
        }
        if self.device.type == "cuda":
            rng["cuda"] = [torch.cuda.get_rng_state(self.device)]
        carry = None
        if self.carry is not None:
            carry = distributed.gather(self.model.flatten_state(self.carry).detach())
        state = {
            "step": self.step,
            "world_size": self.world_size,
            "stopped": self.stopped,
            "bad_steps": self.bad_steps,
            "loss_sum": self._loss_sum,
            "loss_count": self._loss_count,
            "log_sum": self._log_sum,
            "log_count": self._log_count,
            "train_curve": self._train_curve,
            "best": self.best,
            "best_step": self.best_step,
            "evals_since_best": self.evals_since_best,
            "metric": self.metric,
            "last_record": self.last_record,
            "optimizer_name": self.config.optimizer,
            "optimizer": pack(self.optimizer.state_dict(), "optimizer", tensors),
            "rng": pack(rng, "rng", tensors),
            "carry": None if carry is None else pack(carry, "carry", tensors),
            "task": pack(self.task.state_dict(), "task", tensors),
            "curriculum": None
            if self.curriculum is None
            else pack(self.curriculum.state_dict(), "curriculum", tensors),
        }
        return tensors, state

    def save(self) -> Path | None:
        """Write a checkpoint for the current step (rank 0 only; every rank must call it)."""
        tensors, state = self.state_tensors_and_json()
        if not self.is_main or self.checkpoint_dir is None:
            return None
        path = save_checkpoint(self.checkpoint_dir, checkpoint_name(self.step), tensors, state)
        prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
        return path

    def _load_optimizer(self, saved: dict[str, Any], saved_name: str | None, path: str | Path) -> None:
        """Load the optimiser's state when it can carry over; the config's hyper-parameters win either way.

        The state of another optimiser (``--set trainer.optimizer=...`` on resume) cannot carry over: it is
        dropped with a warning and the new optimiser starts fresh. Hyper-parameters (momentum, weight decay,
        betas, ...) come from the config, so a ``--set`` of one on resume takes effect.
        """
        fresh = [{k: v for k, v in group.items() if k != "params"} for group in self.optimizer.param_groups]
        groups = saved.get("param_groups", [])
        same_keys = all(set(g) - {"params"} == set(f) for g, f in zip(groups, fresh, strict=False))
        compatible = saved_name == self.config.optimizer if saved_name is not None else same_keys
        if not compatible or len(groups) != len(fresh):
            warnings.warn(
                f"{path}: optimiser state of {saved_name or 'another optimiser'} dropped: it cannot carry over to "
                f"trainer.optimizer={self.config.optimizer}, which starts with a fresh state",
                ResumeWarning,
                stacklevel=3,
            )
            return
        self.optimizer.load_state_dict(saved)
        for group, hyper in zip(self.optimizer.param_groups, fresh, strict=True):
            group.update(hyper)

    def _save_best(self) -> None:
        if not self.is_main or self.checkpoint_dir is None:
            return
        tensors = {f"model.{k}": v.detach().to("cpu").clone().contiguous() for k, v in self.model.state_dict().items()}
        state = {"step": self.step, "metric": self.metric, "value": self.best, "task": pack(self.task.state_dict(),
                 "task", tensors)}  # fmt: skip
        save_checkpoint(self.checkpoint_dir, "best", tensors, state)

    def resume(self, path: str | Path) -> int:
        """:meth:`load` a checkpoint and cut ``metrics.jsonl`` back to its step (rank 0); returns the step.

        Records past the checkpoint were written by the run that was killed and will be written again.
        """
        step = self.load(path)
        if self.is_main and self.run_dir is not None:
            truncate_metrics(self.run_dir / METRICS_FILE, step)
        return step

    def load(self, path: str | Path) -> int:
        """Restore everything from a checkpoint written by :meth:`save`; returns its step.

        Raises:
            CheckpointError: missing, damaged, or not matching this model (the message names the file).
        """
        tensors, state = load_checkpoint(path)
        try:
            load_model_tensors(self.model, tensors, path)
            self._load_optimizer(unpack(state["optimizer"], tensors), state.get("optimizer_name"), path)
            rng = unpack(state["rng"], tensors)
            same_world = int(state.get("world_size", 1)) == self.world_size
            if same_world:
                torch.set_rng_state(rng["torch"][self.rank].cpu())
                self.generator.set_state(rng["generator"][self.rank].cpu())
            else:
                warnings.warn(
                    f"{path}: saved by {state.get('world_size')} processes, resumed by {self.world_size}; the "
                    "random streams are re-seeded, so the run will not repeat an uninterrupted one exactly",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.generator.manual_seed(self.config.seed + self.rank + 7919 * int(state["step"]))
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"][0].cpu(), self.device)
            if self.curriculum is not None and state.get("curriculum") is not None:
                self.curriculum.load_state_dict(unpack(state["curriculum"], tensors))
            self.task.load_state_dict(unpack(state["task"], tensors))
            carry = state.get("carry")
            self.carry = None
            if carry is not None and same_world:
                flat = unpack(carry, tensors)[self.rank].to(self.device)
                self.carry = self.model.unflatten_state(flat)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            if isinstance(err, CheckpointError):
                raise
            raise CheckpointError(f"{path}: checkpoint does not fit this run ({type(err).__name__}: {err})") from None
        self.step = int(state["step"])
        self.stopped = state.get("stopped")
        self.bad_steps = int(state.get("bad_steps", 0))
        self._loss_sum = float(state.get("loss_sum", 0.0))
        self._loss_count = int(state.get("loss_count", 0))
        self._log_sum = float(state.get("log_sum", 0.0))
        self._log_count = int(state.get("log_count", 0))
        self._train_curve = [[int(s), float(v)] for s, v in state.get("train_curve", [])]
        self.best = state.get("best")
        self.best_step = state.get("best_step")
        self.evals_since_best = int(state.get("evals_since_best", 0))
        self.last_record = dict(state.get("last_record") or {})
        return self.step


def noisy_initial_state(model: nn.Module, x: Tensor, std: float, generator: torch.Generator) -> Any:
    """The model's initial state for batch ``x`` with N(0, std²) noise added to every floating-point tensor.

    Cooijmans et al. (2017), section 5.1: on sequential MNIST the first ~100 pixels are the same for every
    image, so with h0 = 0 each batch-normalised term of the first steps has zero variance across the
    batch; noise on the initial state gives it some, and gradients stay finite. The noise is drawn from
    the training ``generator`` (checkpointed), so a resumed run draws the same noise.

    Args:
        model: a model with ``initial_state(batch_size, device, dtype)``.
        x: the batch `[B, T, D]` (its size, device and dtype size the state).
        std: the noise's standard deviation.
        generator: the CPU generator to draw from.
    """
    state = model.initial_state(x.shape[0], device=x.device, dtype=x.dtype)

    def add_noise(t: Tensor) -> Tensor:
        if not t.is_floating_point():
            return t
        noise = torch.randn(t.shape, generator=generator, dtype=t.dtype)
        return t + std * noise.to(t.device)

    return st.tree_map(add_noise, state)


def load_model_tensors(model: nn.Module, tensors: dict[str, Tensor], path: str | Path = "checkpoint") -> None:
    """Load the ``model.*`` tensors of a checkpoint into ``model`` (strict).

    Raises:
        CheckpointError: naming the file and the missing or unexpected parameter names.
    """
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    missing, unexpected = [], []
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: checkpoint weights do not match the model (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    for key, value in weights.items():
        if tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{path}: parameter {key!r} has shape {tuple(value.shape)} in the checkpoint, "
                f"{tuple(own[key].shape)} in the model"
            )
    model.load_state_dict(weights)


__all__ = ["EVAL_SEEDS", "FitResult", "NonFiniteWarning", "ResumeWarning", "Trainer", "TrainingError",
           "load_model_tensors", "lower_is_better", "noisy_initial_state"]  # fmt: skip
