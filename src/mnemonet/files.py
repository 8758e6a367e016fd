"""Files of a run folder that every layer reads or writes: atomic writes and the one ``metrics.jsonl`` reader.

Everything written into a run folder goes through :func:`atomic_write_bytes` (a reader sees the old
file or the whole new one). ``metrics.jsonl`` is appended one whole line at a time; a process killed
mid-write can leave a partial last line, which :func:`read_metrics` drops. Any other line that is not
a JSON object means the file is damaged, and reading it raises.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` file, or of ``<run>/metrics.jsonl`` given a run folder.

    A missing file has no records. Blank lines are skipped, and so is a last line without its newline
    (a write cut short by a kill).

    Raises:
        ValueError: a complete line is not a JSON object (naming the file and line number).
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if i == len(lines) - 1:  # no newline after it: cut short, not damaged
                continue
            raise ValueError(f"{path}: line {i + 1} is not JSON ({err.msg}); the metrics file is damaged") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}: line {i + 1} is not a JSON object; the metrics file is damaged")
        records.append(record)
    return records


__all__ = ["METRICS_FILE", "atomic_write_bytes", "atomic_write_text", "read_metrics"]
