"""Checkpoints without pickle: safetensors for every tensor, JSON for everything else, written atomically.

A checkpoint is a pair of files in a run's ``checkpoints/`` folder::

    step_00001000.safetensors   model weights, optimiser tensors, RNG states, carried model state
    step_00001000.json          step, trainer/curriculum/task state, optimiser scalars, and the
                                SHA-256 of the weights file

Each file is written to a temporary name in the same folder, flushed, fsync'ed and renamed over
its final name (``os.replace``), weights first, JSON last: a JSON file only exists once its weights
are complete, so a run killed at any moment leaves its previous checkpoints intact. Loading checks
the hash and reports a damaged file by name. Nested state (dicts with any keys, lists, tuples,
tensors, numbers, strings) is packed by :func:`pack` into JSON plus named tensors.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from mnemonet.errors import CheckpointError
from mnemonet.files import atomic_write_bytes, atomic_write_text

FORMAT = "mnemonet-checkpoint/1"
_NAME = re.compile(r"^step_(\d+)\.json$")


# ----------------------------------------------------------------------------------------------
# nested state <-> JSON + tensors
# ----------------------------------------------------------------------------------------------


def pack(obj: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    """A JSON-able copy of ``obj`` with every tensor moved into ``tensors`` under a name from ``prefix``.

    Tensors become ``{"__tensor__": name}``, tuples ``{"__tuple__": [...]}`` and dicts with
    non-string keys ``{"__items__": [[key, value], ...]}``, so :func:`unpack` restores them exactly.
    """
    if isinstance(obj, Tensor):
        name = prefix
        tensors[name] = obj.detach().to("cpu").clone().contiguous()
        return {"__tensor__": name}
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, float, str)):
        return obj
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: pack(v, f"{prefix}.{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[pack(k, f"{prefix}.k{i}", tensors), pack(v, f"{prefix}.{i}", tensors)]
                              for i, (k, v) in enumerate(obj.items())]}  # fmt: skip
    if isinstance(obj, tuple):
        return {"__tuple__": [pack(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [pack(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    raise CheckpointError(f"{prefix}: cannot store a {type(obj).__name__} in a checkpoint (tensors, numbers, "
                          "strings, lists, tuples and dicts only)")  # fmt: skip


def unpack(obj: Any, tensors: Mapping[str, Tensor]) -> Any:
    """Inverse of :func:`pack`."""
    if isinstance(obj, list):
        return [unpack(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__tuple__"}:
            return tuple(unpack(v, tensors) for v in obj["__tuple__"])
        if set(obj) == {"__items__"}:
            return {unpack(k, tensors): unpack(v, tensors) for k, v in obj["__items__"]}
        return {k: unpack(v, tensors) for k, v in obj.items()}
    return obj


# ----------------------------------------------------------------------------------------------
# checkpoint files
# ----------------------------------------------------------------------------------------------


def checkpoint_name(step: int) -> str:
    """``step_00001000`` for step 1000."""
    return f"step_{step:08d}"


def save_checkpoint(folder: str | Path, name: str, tensors: Mapping[str, Tensor], state: dict[str, Any]) -> Path:
    """Write ``name.safetensors`` then ``name.json`` atomically; returns the JSON path.

    Args:
        folder: the checkpoints folder (created if missing).
        name: file stem, e.g. :func:`checkpoint_name` of the step, or ``"best"``.
        tensors: named CPU tensors (contiguous, not sharing storage).
        state: JSON-able state (see :func:`pack`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = st_save(dict(tensors), metadata={"format": FORMAT})
    weights = atomic_write_bytes(folder / f"{name}.safetensors", data)
    meta = {"format": FORMAT, "weights": weights.name, "sha256": hashlib.sha256(data).hexdigest(), "state": state}
    return atomic_write_text(folder / f"{name}.json", json.dumps(meta, indent=1) + "\n")


def load_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read and verify a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the checkpoint's ``.json`` file (or its ``.safetensors`` file, or the stem).

    Returns:
        ``(tensors, state)``.

    Raises:
        CheckpointError: naming the missing or damaged file.
    """
    path = Path(path)
    if path.suffix != ".json":
        path = path.with_name(path.stem + ".json") if path.suffix == ".safetensors" else Path(f"{path}.json")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: damaged checkpoint state, not readable JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "state" not in meta:
        raise CheckpointError(f"{path}: not a mnemonet checkpoint (expected format {FORMAT!r})")
    weights = path.parent / str(meta.get("weights", ""))
    try:
        data = weights.read_bytes()
    except OSError:
        raise CheckpointError(f"{weights}: checkpoint weights missing (named by {path.name})") from None
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise CheckpointError(f"{weights}: damaged checkpoint weights (SHA-256 does not match {path.name})")
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError) as err:
        raise CheckpointError(f"{weights}: damaged checkpoint weights ({err})") from None
    return tensors, meta["state"]


def list_checkpoints(folder: str | Path) -> list[Path]:
    """The ``step_*.json`` checkpoints in ``folder``, oldest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest ``step_*.json`` in ``folder``, or None."""
    found = list_checkpoints(folder)
    return found[-1] if found else None


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (``best`` is never touched)."""
    for path in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        path.unlink(missing_ok=True)  # JSON first: a weights file without JSON is never loaded
        path.with_suffix(".safetensors").unlink(missing_ok=True)


__all__ = [
    "FORMAT", "CheckpointError", "atomic_write_bytes", "atomic_write_text", "checkpoint_name", "latest_checkpoint",
    "list_checkpoints", "load_checkpoint", "pack", "prune_checkpoints", "save_checkpoint", "unpack",
]  # fmt: skip
