"""The errors mnemonet raises on purpose, in the bottom layer so that every layer can raise and catch them.

Each message is one line that names the argument (config key, file, flag) and what would fix it; the
command line prints it after ``error:``. ``ConfigError`` and ``RunLockedError`` are configuration or
usage mistakes (exit code 2); ``CheckpointError`` and ``TrainingError`` are failures while running (1).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration key is unknown or its value is invalid; the message names the key."""


class RunLockedError(ConfigError):
    """Another live process holds the run folder (training or resuming it); the message names its pid."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged or does not fit the run; the message names the file."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many non-finite steps in a row)."""


__all__ = ["CheckpointError", "ConfigError", "RunLockedError", "TrainingError"]
