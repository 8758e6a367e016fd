"""Run-level work above training and analysis: run folders, training and resuming in them, analysing a run, the demo.

A run is a folder (``config.yaml``, ``metrics.jsonl``, ``checkpoints/``, ``analysis/``); this package
creates it exclusively, holds its lock while a process trains in it, resumes it, loads it for evaluation
and analysis, and builds its report. ``mnemonet.cli`` is the thin command line over it.
"""

from mnemonet.app.run import Run, build_model, build_run, evaluate_run, load_run, read_run_config, train
from mnemonet.files import read_metrics

__all__ = ["Run", "build_model", "build_run", "evaluate_run", "load_run", "read_metrics", "read_run_config", "train"]
