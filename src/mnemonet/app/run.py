"""Runs: build model, task and curriculum from a config, train in a run folder, resume, load for evaluation.

A run folder holds (DESIGN.md)::

    config.yaml        the resolved config (presets, ``extends`` and ``--set`` overrides applied)
    metrics.jsonl      one JSON record per evaluation
    tensorboard/       TensorBoard event files
    checkpoints/       step_XXXXXXXX.{safetensors,json} (the newest few) and best.{safetensors,json}
    .lock              held by the process training or resuming the run (see :mod:`mnemonet.app.folders`)

:func:`train` starts a run or, given ``resume``, continues the newest checkpoint of one. Model sizes
come from the task: ``build(name, input_size=task.input_size, **kwargs)``, followed by a linear
:class:`~mnemonet.models.readout.Readout` to ``task.output_size`` unless the model's factory takes
``output_size`` itself. ``trainer.init_from: RUN_DIR`` (or a checkpoint ``.json``) starts a new run from
another run's weights (weights only: a fresh optimiser, step 0), e.g. to fine-tune with a regulariser.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnemonet._checks import check_output_size
from mnemonet.app.folders import RunLock, create_run_dir
from mnemonet.errors import CheckpointError, ConfigError, RunLockedError
from mnemonet.files import METRICS_FILE, atomic_write_text
from mnemonet.tasks.base import Curriculum, Task
from mnemonet.training import distributed
from mnemonet.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from mnemonet.training.config import RunConfig, load_config
from mnemonet.training.device import DEFAULT_THREADS, choose_device, num_threads
from mnemonet.training.logging import MetricsLog, truncate_metrics
from mnemonet.training.regularizers import make_regularizer
from mnemonet.training.trainer import FitResult, Trainer, load_model_tensors

CONFIG_FILE = "config.yaml"


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

    ``model.readout_dropout`` (default 0) is the dropout on the core's output before the linear readout
    (:class:`~mnemonet.models.readout.Readout`); models with their own readout (those that take
    ``output_size``) reject it.

    Returns:
        a model mapping `[B, T, task.input_size]` to logits `[B, T, task.output_size]`.
    """
    from mnemonet.models.readout import Readout
    from mnemonet.models.registry import build

    name, kwargs = config.model.name, dict(config.model.kwargs)
    readout_dropout = kwargs.pop("readout_dropout", 0.0)
    torch.manual_seed(config.trainer.seed)
    try:
        if _takes_output_size(name):
            if readout_dropout:
                raise ValueError(f"readout_dropout: model {name!r} has its own readout (it takes output_size)")
            return build(name, input_size=task.input_size, output_size=task.output_size, **kwargs)
        core = build(name, input_size=task.input_size, **kwargs)
        check_output_size(core, f"model {name!r}")
        return Readout(core, task.output_size, dropout=readout_dropout)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"model: {err}") from None


def init_from_run(model: nn.Module, source: str | Path) -> Path:
    """Load another run's model weights into ``model`` (weights only), for ``trainer.init_from``.

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
            raise ConfigError(f"trainer.init_from: {source} is not a run folder (no {CONFIG_FILE})")
        ckdir = source / "checkpoints"
        path = ckdir / "best.json" if (ckdir / "best.json").is_file() else latest_checkpoint(ckdir)
        if path is None:
            raise CheckpointError(f"trainer.init_from: {ckdir} holds no checkpoint")
    elif source.suffix == ".json" and source.is_file():
        path = source
    else:
        raise ConfigError(f"trainer.init_from: expected a run folder or a checkpoint .json, got {str(source)!r}")
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
    handle_signals: bool = True,
) -> tuple[FitResult, Run]:
    """Train a run in a folder; under ``torchrun``, every process calls this.

    The run is locked for the whole call (:class:`~mnemonet.app.folders.RunLock`): a second process that
    trains or resumes the same folder gets a :class:`~mnemonet.errors.RunLockedError`. Model, optimiser,
    task, regulariser and starting weights are all built before anything is written, so a failure leaves
    an existing run folder (its ``config.yaml`` included) as it was.

    Args:
        config: the resolved config (for ``resume``: the run's config, possibly with overrides).
        out: new run folder; None creates ``runs/<source>-<time>-<random>`` exclusively. A folder that
            already holds checkpoints is refused (resume it instead); one with a config but no checkpoint
            (stopped before its first) is restarted in place.
        resume: a run folder to continue from its newest checkpoint (``out`` is then ignored); without a
            checkpoint the run restarts from step 0 in place.
        device: overrides ``trainer.device``.
        threads: overrides ``trainer.threads`` (CPU intra-op threads).
        progress: overrides ``trainer.progress``.
        source: preset or file name, used for the default folder name.
        handle_signals: on SIGTERM / SIGINT finish the step, write a checkpoint and return with
            ``result.reason == "interrupted"`` (see :meth:`mnemonet.training.trainer.Trainer.fit`).

    Raises:
        ConfigError: bad config or folder (RunLockedError: another process holds the run);
        CheckpointError: damaged checkpoint (nothing is changed); TrainingError: too many non-finite steps.
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
            result = _train(config, out, resume, dev, progress, source, info, handle_signals)
        # Rank 0 is still writing the last checkpoint when the others finish; tearing a gloo group down
        # while a peer is busy can abort the process, so every rank leaves together.
        distributed.barrier()
        return result
    finally:
        distributed.shutdown()


def _folder_for(out: str | Path | None, resume: str | Path | None, source: str, info: Any) -> Path:
    """The run folder, created (exclusively when its name is chosen here) on rank 0 and agreed by every rank."""
    if resume is not None:
        run_dir = Path(resume)
    elif out is not None:
        run_dir = Path(out)
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
    else:
        run_dir = create_run_dir(source) if info.is_main else Path()
    return Path(distributed.broadcast_text(str(run_dir)))


def _lock(run_dir: Path, purpose: str, info: Any) -> RunLock | None:
    """Rank 0 takes the run's lock; a refusal reaches every rank as the same one-line error."""
    lock, refusal = None, ""
    if info.is_main:
        try:
            lock = RunLock(run_dir, purpose).acquire()
        except RunLockedError as err:
            refusal = str(err)
    refusal = distributed.broadcast_text(refusal)
    if refusal:
        raise RunLockedError(refusal)
    return lock


def _setup(config: RunConfig, run: Run, trainer_args: dict[str, Any], start_weights: bool) -> tuple[Trainer, Any]:
    """The starting weights, the extra loss and the trainer of a run: everything that can fail on the config."""
    init = config.trainer.init_from
    if init is not None and start_weights:
        init_from_run(run.model, init)
    try:
        extra = make_regularizer(config.regularizer.name, run.model, run.task, **config.regularizer.kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err) if str(err).startswith("regularizer") else f"regularizer: {err}") from None
    return Trainer(run.model, run.task, config.trainer, run.curriculum, extra_loss=extra, **trainer_args), extra


def _prepare_extra(extra: Any, model: nn.Module, config: RunConfig) -> None:
    """Let the extra loss look at the starting model now (``prepare``), so a bad start fails before any write."""
    prepare = getattr(extra, "prepare", None)
    if prepare is None:
        return
    try:
        prepare(model)
    except ValueError as err:
        start = (f"it starts from trainer.init_from={config.trainer.init_from}" if config.trainer.init_from
                 else "it starts from untrained weights (trainer.init_from is not set)")  # fmt: skip
        raise ConfigError(
            f"regularizer: {err}; {start}. Start from a trained run with --set trainer.init_from=RUN, where RUN "
            "is a delayed-recall run (e.g. of delayed_recall_gru-small or `mnemonet demo`) that answers every class "
            "correctly at the task's delays, or set regularizer.correct_only=false"
        ) from None


def _train(config, out, resume, dev, progress, source, info, handle_signals) -> tuple[FitResult, Run]:
    if resume is not None and not (Path(resume) / CONFIG_FILE).is_file():
        raise ConfigError(f"--resume {resume}: not a run folder (no {CONFIG_FILE}); give a folder made by `train`")
    # Everything that can fail on the config (model, optimiser, task, regulariser, starting weights) is
    # built before a folder is made or a file is written, so a bad --set on --resume leaves the run as it was.
    run = build_run(config)
    found = latest_checkpoint(Path(resume) / "checkpoints") if resume is not None else None
    trainer, extra = _setup(config, run, {"device": dev, "progress": progress}, start_weights=found is None)
    run_dir = _folder_for(out, resume, source, info)
    lock = _lock(run_dir, "resuming" if resume is not None else "training", info)
    try:
        checkpoint = latest_checkpoint(run_dir / "checkpoints")
        if resume is None and checkpoint is not None:
            raise ConfigError(f"--out {run_dir}: already holds a run; use --resume {run_dir} to continue it")
        if checkpoint is not None:
            try:
                trainer.load(checkpoint)
            except CheckpointError as err:
                raise CheckpointError(f"{err}{_checkpoint_hint(run_dir, checkpoint, err)}") from None
        _prepare_extra(extra, run.model, config)
        # from here on the run folder changes
        trainer.run_dir = run_dir
        run.path = run_dir
        existed = (run_dir / CONFIG_FILE).is_file()
        distributed.barrier()
        if trainer.is_main:
            atomic_write_text(run_dir / CONFIG_FILE, config.to_yaml())
            truncate_metrics(run_dir / METRICS_FILE, trainer.step)  # drop what a killed process wrote past it
        distributed.barrier()
        fresh = checkpoint is None  # a new run, or one stopped before its first checkpoint: restart in place
        log = MetricsLog(run_dir if trainer.is_main else None, config.trainer.tensorboard,
                         trainer.step + 1 if existed else None)  # fmt: skip
        try:
            if trainer.is_main and fresh:
                log.text("config", "```\n" + config.to_yaml() + "```", 0)
            if trainer.step >= config.trainer.steps or trainer.stopped:
                result = FitResult(trainer.step, trainer.stopped or "finished", trainer.best, trainer.best_step,
                                   trainer.last_record)  # fmt: skip
            else:
                result = trainer.fit(log, handle_signals=handle_signals)
        finally:
            log.close()
    finally:
        if lock is not None:
            lock.release()
    run.step = trainer.step
    return result, run


def _checkpoint_hint(run_dir: Path, checkpoint: Path, err: CheckpointError) -> str:
    """Where a checkpoint does not load: a damaged file can be set aside; a config change cannot be fixed so."""
    if "does not match the model" in str(err) or "has shape" in str(err) or "does not fit" in str(err):
        return ("; the run is unchanged: if a --set changed the model's sizes, resume without it "
                "(a different model needs a new run)")  # fmt: skip
    others = [p.name for p in list_checkpoints(run_dir / "checkpoints") if p != checkpoint]
    if others:
        return f"; older checkpoints: {', '.join(others)} (move the damaged one away to use them)"
    return ""


def load_run(run_dir: str | Path, checkpoint: str = "best", overrides: list[str] | tuple[str, ...] = (),
             device: str | torch.device = "cpu") -> Run:  # fmt: skip
    """A trained run's model (weights loaded), task and curriculum, for evaluation or sampling.

    Args:
        run_dir: the run folder.
        checkpoint: ``"best"`` (the default of every command that reads a run: the weights with the best
            validation metric, or the newest step checkpoint when the run has no best yet), ``"last"``
            (the newest step checkpoint), or a path to a checkpoint ``.json``.
        overrides: ``KEY=VALUE`` changes to the run's config (e.g. ``task.t_max=40`` to test longer).
        device: where to put the model.

    Raises:
        ConfigError: not a run folder; CheckpointError: no or damaged checkpoint.
    """
    from mnemonet.training.checkpoint import unpack as _unpack

    run_dir = Path(run_dir)
    config = read_run_config(run_dir, list(overrides))
    ckdir = run_dir / "checkpoints"
    if checkpoint == "best" and (ckdir / "best.json").is_file():
        path = ckdir / "best.json"
    elif checkpoint in ("best", "last"):
        path = latest_checkpoint(ckdir)
        if path is None:
            raise CheckpointError(f"{ckdir}: no checkpoint in this run; train it first (or --resume it)")
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


__all__ = ["CONFIG_FILE", "Run", "build_curriculum", "build_model", "build_run", "build_task", "evaluate_run",
           "init_from_run", "load_run", "read_run_config", "train"]  # fmt: skip
