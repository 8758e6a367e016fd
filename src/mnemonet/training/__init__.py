"""Training: typed configs and presets, the trainer, checkpoints, metrics, progress, devices and DDP.

Run folders (train or resume a run in a folder, load a trained run) live one layer up, in :mod:`mnemonet.app`.
"""

from mnemonet.errors import CheckpointError, ConfigError, TrainingError
from mnemonet.files import read_metrics
from mnemonet.training.checkpoint import load_checkpoint, save_checkpoint
from mnemonet.training.config import (
    CurriculumConfig,
    EarlyStoppingConfig,
    ModelConfig,
    RegularizerConfig,
    RunConfig,
    TaskConfig,
    TrainerConfig,
    list_presets,
    load_config,
)
from mnemonet.training.device import DEFAULT_THREADS, choose_device
from mnemonet.training.optim import lr_at, make_optimizer
from mnemonet.training.regularizers import available_regularizers, make_regularizer, register_regularizer
from mnemonet.training.trainer import FitResult, NonFiniteWarning, Trainer

__all__ = [
    "DEFAULT_THREADS", "CheckpointError", "ConfigError", "CurriculumConfig", "EarlyStoppingConfig", "FitResult",
    "ModelConfig", "NonFiniteWarning", "RegularizerConfig", "RunConfig", "TaskConfig", "Trainer", "TrainerConfig",
    "TrainingError", "available_regularizers", "choose_device", "list_presets", "load_checkpoint", "load_config",
    "lr_at", "make_optimizer", "make_regularizer", "read_metrics", "register_regularizer", "save_checkpoint",
]  # fmt: skip
