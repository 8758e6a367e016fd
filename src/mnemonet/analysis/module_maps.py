"""Module maps: which RIMs / BRIMs modules were active at each time step, drawn as a raster (module x time).

The active masks come from ``model.trace(x)`` (its ``"active"`` entry): `[B, T, n]` for RIMs and
`[B, T, L, n]` for BRIMs. :func:`plot_module_activity` draws one sequence of the batch, one panel per
layer (top layer on top), a filled cell where a module was active. Figures are built with
``matplotlib.figure.Figure`` directly (no pyplot, no global backend change) and saved with Agg.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure


def activity_array(active: torch.Tensor | np.ndarray, batch_index: int = 0) -> np.ndarray:
    """The active mask of one sequence as a `[L, n, T]` bool array (L = 1 for RIMs).

    Args:
        active: `[B, T, n]` (RIMs) or `[B, T, L, n]` (BRIMs) bool or 0/1 mask.
        batch_index: which sequence of the batch, in [0, B).

    Raises:
        ValueError: on a mask of another rank or a batch index out of range.
    """
    a = active.detach().cpu().numpy() if isinstance(active, torch.Tensor) else np.asarray(active)
    if a.ndim not in (3, 4):
        raise ValueError(f"active: expected shape (B, T, n) or (B, T, L, n), got {tuple(a.shape)}")
    if not isinstance(batch_index, int) or not 0 <= batch_index < a.shape[0]:
        raise ValueError(f"batch_index: expected an integer in [0, {a.shape[0]}), got {batch_index!r}")
    a = a[batch_index].astype(bool)  # (T, n) or (T, L, n)
    if a.ndim == 2:
        a = a[:, None, :]  # (T, 1, n)
    return np.transpose(a, (1, 2, 0))  # (L, n, T)


def plot_module_activity(
    active: torch.Tensor | np.ndarray,
    batch_index: int = 0,
    path: str | Path | None = None,
    title: str | None = None,
) -> Figure:
    """Raster of module activity over time: one row per module, one column per step.

    Args:
        active: `[B, T, n]` (RIMs) or `[B, T, L, n]` (BRIMs) active masks, as returned by
            ``model.trace(x)`` (its ``"active"`` entry).
        batch_index: which sequence of the batch to draw.
        path: where to save the figure (PNG, PDF, SVG by suffix), or None.
        title: figure title (default: "module activity").

    Returns:
        The figure, with one axes per layer (the top layer first); each axes holds one image whose
        data is the `[n, T]` mask of that layer.

    Example:
        >>> fig = plot_module_activity(torch.rand(2, 10, 6) > 0.5)
        >>> len(fig.axes)
        1
    """
    maps = activity_array(active, batch_index)  # (L, n, T)
    L, n, T = maps.shape
    fig = Figure(figsize=(max(4.0, min(16.0, 0.12 * T + 1.5)), 0.6 + L * max(1.0, 0.25 * n + 0.4)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(L, 1, squeeze=False)[:, 0]
    cmap = ListedColormap(["#f4f4f4", "#1f4e9c"])
    for row, layer in enumerate(reversed(range(L))):
        ax = axes[row]
        ax.imshow(maps[layer], aspect="auto", interpolation="nearest", cmap=cmap, vmin=0, vmax=1, origin="lower")
        ax.set_ylabel(f"layer {layer}\nmodule" if L > 1 else "module")
        ax.set_yticks(range(n))
        if row < L - 1:
            ax.set_xticklabels([])
    axes[-1].set_xlabel("time step")
    from matplotlib.patches import Patch

    axes[0].legend(handles=[Patch(color=cmap(1), label="active"), Patch(color=cmap(0), ec="0.7", label="inactive")],
                   fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)  # fmt: skip
    fig.suptitle(title or "module activity")
    fig.tight_layout()
    if path is not None:
        from mnemonet.analysis.plots import save_figure

        save_figure(fig, path, dpi=120)
    return fig
