"""Run metrics: ``metrics.jsonl`` (one JSON object per evaluation) and TensorBoard event files.

``metrics.jsonl`` holds only values that are a function of the seed and the step (no wall-clock
times), so a resumed run's file equals an uninterrupted run's. Lines are appended whole and flushed;
on resume, :func:`truncate_metrics` drops lines past the checkpoint's step (and a half-written last
line). TensorBoard gets the same values plus training loss, learning rate and gradient norm every
``log_every`` steps, under ``<run>/tensorboard``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from mnemonet.files import METRICS_FILE, atomic_write_text, read_metrics

TENSORBOARD_DIR = "tensorboard"


def truncate_metrics(path: str | Path, step: int) -> None:
    """Keep only the whole records with ``record["step"] <= step`` (atomically rewrites the file)."""
    path = Path(path)
    if not path.is_file():
        return
    keep = [r for r in read_metrics(path) if int(r.get("step", -1)) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


class MetricsLog:
    """Writes a run's metrics; a no-op when ``run_dir`` is None (non-zero DDP ranks, plain fits).

    Args:
        run_dir: the run folder, or None.
        tensorboard: also write TensorBoard events.
        purge_step: on resume, the checkpoint step + 1: TensorBoard hides events logged at or after it
            by the killed run.
    """

    def __init__(self, run_dir: str | Path | None, tensorboard: bool = True, purge_step: int | None = None) -> None:
        self.path = None if run_dir is None else Path(run_dir) / METRICS_FILE
        self._writer = None
        if run_dir is not None:
            Path(run_dir).mkdir(parents=True, exist_ok=True)
        if run_dir is not None and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR), purge_step=purge_step)

    def record(self, record: dict[str, Any]) -> None:
        """Append one record (must hold ``step``) as a line of ``metrics.jsonl`` and flush it to disk."""
        if self.path is None:
            return
        line = json.dumps(record) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        step = int(record["step"])
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                split, _, name = key.partition("_")
                tag = f"{split}/{name}" if split in ("train", "valid", "test") and name else key
                self.scalar(tag, float(value), step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        """One TensorBoard scalar (skipped when TensorBoard is off or the value is not finite)."""
        if self._writer is not None and math.isfinite(value):
            self._writer.add_scalar(tag, value, step)

    def text(self, tag: str, text: str, step: int) -> None:
        """A TensorBoard text entry (e.g. the resolved config)."""
        if self._writer is not None:
            self._writer.add_text(tag, text, step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


__all__ = ["METRICS_FILE", "TENSORBOARD_DIR", "MetricsLog", "read_metrics", "truncate_metrics"]
