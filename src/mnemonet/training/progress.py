"""Training progress on the console: a live bar on a terminal, one plain line per evaluation elsewhere.

Modes (``trainer.progress``):

- ``auto`` (default): ``bar`` when standard output is a terminal, else ``lines``.
- ``bar``: a rich progress bar with step, training loss, the last validation metric and the curriculum
  stage, redrawn in place.
- ``lines``: no bar and no control characters, so logs and CI output stay readable: one line per
  evaluation (``step 200/1000  loss 0.41  valid_accuracy 0.83  delay 10``).
- ``off``: nothing (``--quiet``).
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Progress:
    """Show training progress.

    Args:
        total: the last step.
        start: the step training starts from (non-zero on resume).
        mode: ``auto``, ``bar``, ``lines`` or ``off``.
        metric: the validation metric to show next to the loss.
        console: a ``rich.console.Console`` for the bar (default: standard output).
    """

    def __init__(
        self, total: int, start: int = 0, mode: str = "auto", metric: str = "accuracy", console: Any = None
    ) -> None:
        self.total = total
        self.metric = metric
        self._bar = None
        self._task = None
        self._fields = {"loss": "", "metric": "", "stage": ""}
        if mode == "auto":
            mode = "bar" if sys.stdout.isatty() else "lines"
        self.mode = mode
        if mode == "bar":
            import rich.progress as rp

            self._bar = rp.Progress(
                rp.TextColumn("[bold blue]train"),
                rp.BarColumn(),
                rp.MofNCompleteColumn(),
                rp.TextColumn("{task.fields[loss]} {task.fields[metric]} {task.fields[stage]}"),
                rp.TimeElapsedColumn(),
                rp.TimeRemainingColumn(),
                transient=False,
                console=console,
            )
            self._task = self._bar.add_task("train", total=total, completed=start, **self._fields)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def step(self, step: int, loss: float | None = None) -> None:
        """After each training step."""
        if self._bar is not None:
            if loss is not None:
                self._fields["loss"] = f"loss {loss:.4g}"
            self._bar.update(self._task, completed=step, **self._fields)

    def evaluated(self, step: int, record: dict[str, Any], stage: str | None = None) -> None:
        """After an evaluation; ``record`` is the metrics.jsonl record."""
        key = f"valid_{self.metric}"
        if self._bar is not None:
            if key in record:
                self._fields["metric"] = f"{self.metric} {_fmt(record[key])}"
            self._fields["stage"] = stage or ""
            self._bar.update(self._task, completed=step, **self._fields)
        elif self.mode == "lines":
            parts = [f"step {step}/{self.total}"]
            if "train_loss" in record:
                parts.append(f"loss {_fmt(record['train_loss'])}")
            parts += [f"{k} {_fmt(v)}" for k, v in record.items() if k.startswith("valid_")]
            if stage:
                parts.append(stage)
            print("  ".join(parts), flush=True)

    def message(self, text: str) -> None:
        """A line of text that does not disturb the bar (printed in every mode but ``off``)."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        elif self.mode == "lines":
            print(text, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


__all__ = ["Progress"]
