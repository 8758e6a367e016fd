"""Training: typed configs and presets, the trainer, checkpoints, metrics, progress, devices and DDP."""

from mnemonet.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mnemonet.training.config import (
    ConfigError,
    CurriculumConfig,
    EarlyStoppingConfig,
    ModelConfig,
    RegularizerConfig,
    RunConfig,
    TaskConfig,
    TrainerConfig,
    load_config,
)
from mnemonet.training.device import DEFAULT_THREADS, choose_device
from mnemonet.training.logging import read_metrics
from mnemonet.training.optim import lr_at, make_optimizer
from mnemonet.training.presets import list_presets
from mnemonet.training.regularizers import available_regularizers, make_regularizer, register_regularizer
from mnemonet.training.run import Run, build_model, build_run, evaluate_run, load_run, train
from mnemonet.training.trainer import FitResult, NonFiniteWarning, Trainer, TrainingError

__all__ = [
    "DEFAULT_THREADS", "CheckpointError", "ConfigError", "CurriculumConfig", "EarlyStoppingConfig", "FitResult",
    "ModelConfig", "NonFiniteWarning", "RegularizerConfig", "Run", "RunConfig", "TaskConfig", "Trainer",
    "TrainerConfig", "TrainingError", "available_regularizers", "build_model", "build_run", "choose_device",
    "evaluate_run", "list_presets", "load_checkpoint", "load_config", "load_run", "lr_at", "make_optimizer",
    "make_regularizer", "read_metrics", "register_regularizer", "save_checkpoint", "train",
]  # fmt: skip
