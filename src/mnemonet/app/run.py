"""Runs: build model, task and curriculum from a config, train in a run folder, resume, load for evaluation.

A run folder holds (DESIGN.md)::

    config.yaml        the resolved config (presets, ``extends`` and ``--set`` overrides applied)
    metrics.jsonl      one JSON record per evaluation
    tensorboard/       TensorBoard event files
    checkpoints/       step_XXXXXXXX.{safetensors,json} (the newest few) and best.{safetensors,json}

:func:`train` starts a run or, given ``resume``, continues the newest checkpoint of one. Model sizes
come from the task: ``build(name, input_size=task.input_size, **kwargs)``, followed by a linear
:class:`~mnemonet.models.readout.Readout` to ``task.output_size`` unless the model's factory takes
``output_size`` itself. ``model.init_from: RUN_DIR`` (or a checkpoint ``.json``) starts a new run from
another run's weights (weights only: a fresh optimiser, step 0), e.g. to fine-tune with a regulariser.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mnemonet.tasks.base import Curriculum, Task
from mnemonet.training import distributed
from mnemonet.training.checkpoint import (
    CheckpointError,
    atomic_write_text,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
)
from mnemonet.training.config import ConfigError, RunConfig, load_config
from mnemonet.training.device import DEFAULT_THREADS, choose_device, num_threads
from mnemonet.training.logging import MetricsLog
from mnemonet.training.regularizers import make_regularizer
from mnemonet.training.trainer import FitResult, Trainer, load_model_tensors

CONFIG_FILE = "config.yaml"
INIT_FROM = "init_from"  # model.init_from: a run folder or checkpoint whose weights start a new run


def build_task(config: RunConfig) -> Task:
    """The task named in ``config.task`` (a ConfigError names a bad keyword)."""
    from mnemonet.tasks import make_task

    try:
        return make_task(config.task.name, **config.task.kwargs)
    except (ValueError, TypeError, OSError) as err:
        raise ConfigError(f"task: {err}") from None


def build_curriculum(config: RunConfig, task: Task) -> Curriculum | None:
    """The curriculum named in ``config.curriculum`` on ``task``, or None."""
    if config.curriculum.name is None:
        return None
    from mnemonet.tasks import make_curriculum

    try:
        return make_curriculum(config.curriculum.name, task, **config.curriculum.kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"curriculum: {err}") from None


def _takes_output_size(name: str) -> bool:
    from mnemonet.models import registry

    return "output_size" in registry.parameters(name)


def build_model(config: RunConfig, task: Task) -> nn.Module:
    """The model of ``config.model`` sized for ``task``, initialised from ``trainer.seed``.

    Returns:
        a model mapping `[B, T, task.input_size]` to logits `[B, T, task.output_size]`.
    """
    from mnemonet.models.readout import Readout
    from mnemonet.models.registry import build

    name, kwargs = config.model.name, dict(config.model.kwargs)
    kwargs.pop(INIT_FROM, None)  # weights to start from, loaded by train(), not a model keyword
    torch.manual_seed(config.trainer.seed)
    try:
        if _takes_output_size(name):
            return build(name, input_size=task.input_size, output_size=task.output_size, **kwargs)
        return Readout(build(name, input_size=task.input_size, **kwargs), task.output_size)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model: {err}") from None


def init_from_run(model: nn.Module, source: str | Path) -> Path:
    """Load another run's model weights into ``model`` (weights only), for ``model.init_from``.

    Args:
        model: a model built from a config with the same model section (sizes must match).
        source: a run folder (its ``best`` checkpoint, else its newest one) or a checkpoint ``.json``.

    Returns:
        The checkpoint the weights came from.

    Raises:
        ConfigError: ``source`` is neither a run folder nor a checkpoint; CheckpointError: no checkpoint,
        damaged, or weights that do not fit ``model`` (names and shapes are named).
    """
    source = Path(source)
    if source.is_dir():
        if not (source / CONFIG_FILE).is_file():
            raise ConfigError(f"model.{INIT_FROM}: {source} is not a run folder (no {CONFIG_FILE})")
        ckdir = source / "checkpoints"
        path = ckdir / "best.json" if (ckdir / "best.json").is_file() else latest_checkpoint(ckdir)
        if path is None:
            raise CheckpointError(f"model.{INIT_FROM}: {ckdir} holds no checkpoint")
    elif source.suffix == ".json" and source.is_file():
        path = source
    else:
        raise ConfigError(f"model.{INIT_FROM}: expected a run folder or a checkpoint .json, got {str(source)!r}")
    tensors, _ = load_checkpoint(path)
    load_model_tensors(model, tensors, path)
    return path


@dataclass
class Run:
    """What a run is made of once built."""

    config: RunConfig
    task: Task
    model: nn.Module
    curriculum: Curriculum | None
    path: Path | None = None
    step: int = 0


def build_run(config: RunConfig) -> Run:
    """Task, curriculum and model for ``config`` (no folder, no trainer)."""
    task = build_task(config)
    curriculum = build_curriculum(config, task)
    model = build_model(config, task)
    return Run(config, task, model, curriculum)


def default_run_dir(source: str, root: str | Path = "runs") -> Path:
    """``runs/<preset or file stem>-<YYYYmmdd-HHMMSS>`` (with a suffix if that exists)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(source)).stem) or "run"
    base = Path(root) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    return path


def read_run_config(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """The ``config.yaml`` of a run folder, with overrides applied."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no {CONFIG_FILE})")
    return load_config(path, overrides)


def train(
    config: RunConfig,
    out: str | Path | None = None,
    resume: str | Path | None = None,
    device: str | None = None,
    threads: int | None = None,
    progress: str | None = None,
    source: str = "run",
) -> tuple[FitResult, Run]:
    """Train a run in a folder; under ``torchrun``, every process calls this.

    Args:
        config: the resolved config (for ``resume``: the run's config, possibly with overrides).
        out: new run folder; None picks ``runs/<source>-<time>``. Must not already hold a run.
        resume: a run folder to continue from its newest checkpoint (``out`` is then ignored).
        device: overrides ``trainer.device``.
        threads: overrides ``trainer.threads`` (CPU intra-op threads).
        progress: overrides ``trainer.progress``.
        source: preset or file name, used for the default folder name.

    Raises:
        ConfigError: bad config or folder; CheckpointError: damaged checkpoint (nothing is changed);
        TrainingError: too many non-finite steps.
    """
    cfg = config.trainer
    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
    if threads is not None or cfg.threads is None:  # config.yaml records the thread count used
        default = 1 if distributed.env_info().enabled else DEFAULT_THREADS  # torchrun: one thread per process
        cfg = dataclasses.replace(cfg, threads=threads or cfg.threads or default)
    config = dataclasses.replace(config, trainer=cfg)
    dev = choose_device(cfg.device, distributed.env_info().local_rank if distributed.env_info().enabled else None)
    info = distributed.init_distributed(dev.type)
    try:
        with num_threads(cfg.threads):
            result = _train(config, out, resume, dev, progress, source, info)
        # Rank 0 is still writing the last checkpoint when the others finish; tearing a gloo group down
        # while a peer is busy can abort the process, so every rank leaves together.
        distributed.barrier()
        return result
    finally:
        distributed.shutdown()


def _train(config, out, resume, dev, progress, source, info) -> tuple[FitResult, Run]:
    checkpoint = None
    if resume is not None:
        run_dir = Path(resume)
        checkpoint = latest_checkpoint(run_dir / "checkpoints")
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(f"--resume {run_dir}: not a run folder (no {CONFIG_FILE})")
        if checkpoint is None:
            raise CheckpointError(f"{run_dir / 'checkpoints'}: no checkpoint to resume from")
    else:
        run_dir = Path(out) if out is not None else default_run_dir(source)
        run_dir = Path(distributed.broadcast_text(str(run_dir)))
        taken = info.is_main and ((run_dir / CONFIG_FILE).exists() or bool(list_checkpoints(run_dir / "checkpoints")))
        if distributed.broadcast_text("taken" if taken else "") == "taken":  # rank 0 decides for all
            raise ConfigError(f"--out {run_dir}: already holds a run; use --resume {run_dir} to continue it")
    run = build_run(config)
    run.path = run_dir
    init = config.model.kwargs.get(INIT_FROM)
    if init is not None and checkpoint is None:  # a resumed run takes its weights from its own checkpoint
        if not isinstance(init, str):
            raise ConfigError(f"model.{INIT_FROM}: expected a run folder or checkpoint path, got {init!r}")
        init_from_run(run.model, init)
    try:
        extra = make_regularizer(config.regularizer.name, run.model, run.task, **config.regularizer.kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err) if str(err).startswith("regularizer") else f"regularizer: {err}") from None
    trainer = Trainer(run.model, run.task, config.trainer, run.curriculum, run_dir, dev, extra, progress)
    purge = None
    if checkpoint is not None:
        try:
            trainer.resume(checkpoint)
        except CheckpointError as err:
            others = [p.name for p in list_checkpoints(run_dir / "checkpoints") if p != checkpoint]
            hint = f"; older checkpoints: {', '.join(others)} (move the damaged one away to use them)" if others else ""
            raise CheckpointError(f"{err}{hint}") from None
        purge = trainer.step + 1
    if trainer.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CONFIG_FILE, config.to_yaml())
    distributed.barrier()
    log = MetricsLog(run_dir if trainer.is_main else None, config.trainer.tensorboard, purge)
    try:
        if trainer.is_main and checkpoint is None:
            log.text("config", "```\n" + config.to_yaml() + "```", 0)
        if trainer.step >= config.trainer.steps or trainer.stopped:
            result = FitResult(trainer.step, trainer.stopped or "finished", trainer.best, trainer.best_step,
                               trainer.last_record)  # fmt: skip
        else:
            result = trainer.fit(log)
    finally:
        log.close()
    run.step = trainer.step
    return result, run


def load_run(run_dir: str | Path, checkpoint: str = "last", overrides: list[str] | tuple[str, ...] = (),
             device: str | torch.device = "cpu") -> Run:  # fmt: skip
    """A trained run's model (weights loaded), task and curriculum, for evaluation or sampling.

    Args:
        run_dir: the run folder.
        checkpoint: ``"last"`` (newest step checkpoint), ``"best"``, or a path to a checkpoint ``.json``.
        overrides: ``KEY=VALUE`` changes to the run's config (e.g. ``task.t_max=40`` to test longer).
        device: where to put the model.

    Raises:
        ConfigError: not a run folder; CheckpointError: no or damaged checkpoint.
    """
    from mnemonet.training.checkpoint import unpack as _unpack

    run_dir = Path(run_dir)
    config = read_run_config(run_dir, list(overrides))
    ckdir = run_dir / "checkpoints"
    if checkpoint == "last":
        path = latest_checkpoint(ckdir)
        if path is None:
            raise CheckpointError(f"{ckdir}: no checkpoint in this run")
    elif checkpoint == "best":
        path = ckdir / "best.json"
    else:
        path = Path(checkpoint)
    tensors, state = load_checkpoint(path)
    run = build_run(config)
    load_model_tensors(run.model, tensors, path)
    if run.curriculum is not None and state.get("curriculum") is not None:
        run.curriculum.load_state_dict(_unpack(state["curriculum"], tensors))
    task_state = state.get("task")
    if task_state is not None and not any(o.split("=", 1)[0].strip().startswith("task.") for o in overrides):
        try:
            run.task.load_state_dict(_unpack(task_state, tensors))
        except (KeyError, ValueError, TypeError) as err:
            raise CheckpointError(f"{path}: task state does not fit the task ({err})") from None
    run.model.to(device).eval()
    run.path = run_dir
    run.step = int(state.get("step", 0))
    return run


def evaluate_run(run: Run, split: str = "test", batches: int | None = None, batch_size: int | None = None,
                 device: str | torch.device = "cpu") -> dict[str, float]:  # fmt: skip
    """Mean loss and metrics of a loaded run on held-out seeded batches of ``split``."""
    trainer = Trainer(run.model, run.task, run.config.trainer, run.curriculum, None, device, progress="off")
    return trainer.evaluate(split, batches=batches, batch_size=batch_size)


__all__ = ["CONFIG_FILE", "INIT_FROM", "Run", "build_curriculum", "build_model", "build_run", "build_task",
           "default_run_dir", "evaluate_run", "init_from_run", "load_run", "read_run_config", "train"]  # fmt: skip
