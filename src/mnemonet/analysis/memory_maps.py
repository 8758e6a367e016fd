"""Memory maps of a DNC: where it wrote and read, how used each slot was, and its gates, over time.

The input is what ``model.trace(x)`` returns for a DNC (a mapping) or a :class:`mnemonet.models.dnc.Trace`
(fields `[B, T, ...]`). :func:`plot_memory_access` draws one sequence as stacked heatmaps sharing the time
axis, like the figures of Graves et al. (Nature 2016): write weightings and read weightings (slot × time,
one band per head), usage (slot × time), the gates (allocation, write, free) and the read modes
(backward / content / forward per read head). Figures are built with ``matplotlib.figure.Figure``
directly (no pyplot, no change of the global backend) and rendered with Agg.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_FIELDS = (
    "write_weights",
    "read_weights",
    "usage",
    "allocation_gates",
    "write_gates",
    "free_gates",
    "read_modes",
)


def _numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)


def memory_panels(trace: Any, batch_index: int = 0) -> dict[str, tuple[np.ndarray, list[str]]]:
    """The arrays drawn by :func:`plot_memory_access`, each `[rows, T]` with one label per band of rows.

    Args:
        trace: a ``Trace``, any object with its fields, or a mapping of them, arrays `[B, T, ...]`.
        batch_index: which sequence, in [0, B).

    Returns:
        ``{"write": ([Hw·N, T], labels), "read": ([R·N, T], ...), "usage": ([N, T], ...),
        "gates": ([2·Hw + R, T], ...), "modes": ([R·(1 + 2·Hw), T], ...)}``.

    Raises:
        ValueError: when a field is missing or has the wrong rank, or the batch index is out of range.
    """
    arrays = {}
    ranks = {"write_weights": 4, "read_weights": 4, "usage": 3, "allocation_gates": 3, "write_gates": 3}
    ranks.update({"free_gates": 3, "read_modes": 4})
    for name in _FIELDS:
        value = trace.get(name) if isinstance(trace, Mapping) else getattr(trace, name, None)
        if value is None:
            raise ValueError(f"trace: expected a DNC Trace with field {name!r}, got {type(trace).__name__}")
        a = _numpy(value)
        if a.ndim != ranks[name]:
            raise ValueError(f"trace.{name}: expected {ranks[name]} dimensions (B, T, ...), got shape {a.shape}")
        arrays[name] = a
    B = arrays["usage"].shape[0]
    if not isinstance(batch_index, int) or isinstance(batch_index, bool) or not 0 <= batch_index < B:
        raise ValueError(f"batch_index: expected an integer in [0, {B}), got {batch_index!r}")
    a = {k: v[batch_index] for k, v in arrays.items()}  # each (T, ...)
    T, Hw, N = a["write_weights"].shape
    R = a["read_weights"].shape[1]
    write = a["write_weights"].transpose(1, 2, 0).reshape(Hw * N, T)  # (Hw·N, T), head-major
    read = a["read_weights"].transpose(1, 2, 0).reshape(R * N, T)  # (R·N, T)
    gates = np.concatenate([a["allocation_gates"].T, a["write_gates"].T, a["free_gates"].T], 0)  # (2Hw + R, T)
    modes = a["read_modes"].transpose(1, 2, 0).reshape(-1, T)  # (R·(1 + 2Hw), T)
    suffix = (lambda j: f" {j}") if Hw > 1 else (lambda j: "")
    mode_names = [f"b{suffix(j)}" for j in range(Hw)] + ["c"] + [f"f{suffix(j)}" for j in range(Hw)]
    return {
        "write": (write, [f"write head {j}" for j in range(Hw)]),
        "read": (read, [f"read head {i}" for i in range(R)]),
        "usage": (a["usage"].T, ["usage"]),
        "gates": (
            gates,
            [f"$g^a${suffix(j)}" for j in range(Hw)]
            + [f"$g^w${suffix(j)}" for j in range(Hw)]
            + [f"$f_{i}$" for i in range(R)],
        ),
        "modes": (modes, [f"{i}:{m}" for i in range(R) for m in mode_names]),
    }


def plot_memory_access(
    trace: Any, batch_index: int = 0, path: str | Path | None = None, title: str | None = None
) -> Figure:
    """Heatmaps over time of one sequence's memory access (the pictures of the DNC paper).

    Panels, top to bottom, all with time on the x axis: write weightings (slot × time per write head),
    read weightings (slot × time per read head), usage, gates (allocation g^a, write g^w, free f_i), and
    read modes (backward b, content c, forward f per read head). Weightings use one colour scale from 0 to
    their maximum; gates, usage and modes use [0, 1].

    Args:
        trace: a :class:`mnemonet.models.dnc.Trace` (fields `[B, T, ...]`).
        batch_index: which sequence of the batch to draw.
        path: where to save the figure (PNG, PDF, SVG by suffix), or None.
        title: figure title (default: "DNC memory access").

    Returns:
        The figure, with five image axes (plus their colour bars).

    Example:
        >>> from mnemonet.models.dnc import Trace
        >>> B, T, N, R = 1, 6, 8, 2
        >>> tr = Trace(torch.rand(B, T, 1, N), torch.rand(B, T, R, N), torch.rand(B, T, N), torch.rand(B, T, 1, N),
        ...            torch.rand(B, T, 1), torch.rand(B, T, 1), torch.rand(B, T, R), torch.rand(B, T, R, 3))
        >>> fig = plot_memory_access(tr)
        >>> len(fig.axes) >= 5
        True
    """
    panels = memory_panels(trace, batch_index)
    T = panels["usage"][0].shape[1]
    N = panels["usage"][0].shape[0]
    heights = [max(1.0, panels[k][0].shape[0] / max(N, 1)) for k in ("write", "read", "usage")]
    heights += [max(0.5, 0.12 * panels[k][0].shape[0]) for k in ("gates", "modes")]
    fig = Figure(figsize=(max(5.0, min(16.0, 0.14 * T + 2.5)), 1.2 + 1.6 * sum(heights)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(5, 1, sharex=True, gridspec_kw={"height_ratios": heights})
    spec = [
        ("write", "write weighting", "slot", "Reds", None),
        ("read", "read weighting", "slot", "Blues", None),
        ("usage", "usage", "slot", "Greens", 1.0),
        ("gates", "gates", "", "Greys", 1.0),
        ("modes", "read modes", "", "Purples", 1.0),
    ]
    for ax, (key, name, ylabel, cmap, vmax) in zip(axes, spec, strict=True):
        data, labels = panels[key]
        top = vmax if vmax is not None else max(float(data.max()), 1e-6)
        im = ax.imshow(data, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0.0, vmax=top, origin="upper")
        fig.colorbar(im, ax=ax, pad=0.01, fraction=0.03)
        ax.set_title(name, fontsize=9, loc="left")
        rows_per_band = data.shape[0] // len(labels)
        if key in ("gates", "modes"):
            ax.set_yticks(range(len(labels)), labels, fontsize=7)
        else:
            ax.set_ylabel(ylabel)
            centres = [rows_per_band * (i + 0.5) - 0.5 for i in range(len(labels))]
            if len(labels) > 1:
                ax.set_yticks(centres, labels, fontsize=7)
                for i in range(1, len(labels)):
                    ax.axhline(rows_per_band * i - 0.5, color="black", linewidth=0.6)
    axes[-1].set_xlabel("time step")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title or "DNC memory access")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=130)
    return fig
