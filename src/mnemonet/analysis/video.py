"""Video prediction analysis: a linear location probe per layer, and a strip of predicted vs true frames.

The probe follows BRIMs' table (Mittal et al. 2020, which layer's state best decodes where the digits
are): it fits a ridge-regularised linear map from one layer's hidden state after reading frame t to
each digit's centre in that frame on training videos, and scores it on held-out videos by R² of the
coordinates and by the accuracy of the grid cell (``grid x grid``) the decoded centre falls in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor, nn

from mnemonet.analysis.plots import save_figure
from mnemonet.models.frames import layer_states
from mnemonet.tasks.base import Batch
from mnemonet.tasks.moving_digits import MovingDigitsTask


def ridge_fit(features: Tensor, targets: Tensor, ridge: float = 1e-2) -> Tensor:
    """Least squares with an L2 penalty: ``W = (X^T X + λ I)^-1 X^T Y`` on ``X = [features, 1]``.

    Args:
        features: `[N, D]`.
        targets: `[N, K]`.
        ridge: λ (the bias is penalised too, negligibly).

    Returns:
        `[D + 1, K]` weights, the last row the bias.
    """
    X = torch.cat([features, torch.ones(features.shape[0], 1, dtype=features.dtype)], dim=1)  # (N, D+1)
    gram = X.T @ X + ridge * torch.eye(X.shape[1], dtype=X.dtype)
    return torch.linalg.solve(gram, X.T @ targets)  # (D+1, K)


def ridge_predict(weights: Tensor, features: Tensor) -> Tensor:
    """`[N, D]` features -> `[N, K]` with weights from :func:`ridge_fit`."""
    return features @ weights[:-1] + weights[-1]


def r2_score(pred: Tensor, target: Tensor) -> float:
    """Coefficient of determination over all entries: ``1 - Σ(y - ŷ)² / Σ(y - ȳ_k)²`` (column means)."""
    resid = (target - pred).pow(2).sum()
    total = (target - target.mean(0)).pow(2).sum()
    return float(1.0 - resid / total.clamp_min(1e-12))


@torch.no_grad()
def collect_layer_states(model: nn.Module, batch: Batch) -> list[Tensor]:
    """Each layer's hidden state after every step: a list over layers of `[B, T, D_l]`.

    ``model.step`` is run over the batch; the layers are read from the state's ``core`` (a
    :class:`~mnemonet.models.frames.FrameState`) or the state itself (see
    :func:`~mnemonet.models.frames.layer_states`).
    """
    x = batch.x.to(_device(model))
    B, T = x.shape[0], x.shape[1]
    state = model.initial_state(B, device=x.device, dtype=x.dtype)
    per_step = []
    for t in range(T):
        _, state = model.step(x[:, t], state, t=t)
        per_step.append(layer_states(getattr(state, "core", state)))
    return [torch.stack([s[layer] for s in per_step], dim=1).cpu() for layer in range(len(per_step[0]))]


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _probe_data(model: nn.Module, task: MovingDigitsTask, batches: list[Batch]) -> tuple[list[Tensor], Tensor]:
    layers: list[list[Tensor]] = []
    targets = []
    for batch in batches:
        states = collect_layer_states(model, batch)
        T = batch.x.shape[1]
        layers.append([s.reshape(-1, s.shape[-1]).double() for s in states])  # (B*T, D_l)
        targets.append(batch.info["positions"][:, :T].reshape(-1, task.num_digits[1] * 2).double())  # (B*T, 2n)
    stacked = [torch.cat([part[i] for part in layers]) for i in range(len(layers[0]))]
    return stacked, torch.cat(targets)


def location_probe(
    model: nn.Module,
    task: MovingDigitsTask,
    generator: torch.Generator,
    batches: int = 4,
    batch_size: int = 32,
    ridge: float = 1e-2,
    grid: int = 3,
) -> list[dict[str, float]]:
    """Decode each digit's centre from each layer's state with a linear map (BRIMs' location probe).

    The probe is fit on ``batches`` training batches and scored on as many validation batches, over
    every step t (the state after reading frame t, or the model's own prediction of it when free
    running) and every digit slot present (slots are ordered by digit class).

    Args:
        model: a video model (e.g. :class:`~mnemonet.models.frames.FramePredictor`) with ``step``.
        task: the moving-digits task that draws the videos.
        generator: source of the videos.
        batches, batch_size: videos for fitting and for scoring, each ``batches x batch_size``.
        ridge: L2 penalty λ of the linear map.
        grid: cells per side for the cell accuracy.

    Returns:
        One entry per layer (bottom first): ``{"r2": ..., "cell_accuracy": ...}`` on held-out videos.
    """
    fit = [task.sample(batch_size, generator, "train") for _ in range(batches)]
    held = [task.sample(batch_size, generator, "valid") for _ in range(batches)]
    fit_layers, fit_y = _probe_data(model, task, fit)
    held_layers, held_y = _probe_data(model, task, held)
    out = []
    for X, Xh in zip(fit_layers, held_layers, strict=True):
        preds, trues = [], []
        for slot in range(task.num_digits[1]):
            cols = slice(2 * slot, 2 * slot + 2)
            rows, rows_h = fit_y[:, 2 * slot] >= 0, held_y[:, 2 * slot] >= 0
            if int(rows.sum()) == 0 or int(rows_h.sum()) == 0:
                continue
            W = ridge_fit(X[rows], fit_y[rows, cols], ridge)
            preds.append(ridge_predict(W, Xh[rows_h]))
            trues.append(held_y[rows_h, cols])
        pred, true = torch.cat(preds), torch.cat(trues)  # (N, 2)
        cell = lambda y: (y.clamp(0, 1 - 1e-9) * grid).floor()  # noqa: E731 - (N, 2) cell indices
        accuracy = float((cell(pred) == cell(true)).all(dim=1).double().mean())
        out.append({"r2": r2_score(pred, true), "cell_accuracy": accuracy})
    return out


def plot_frame_strip(
    true_frames: Tensor, predicted: Tensor, observed: int, title: str = "", path: str | Path | None = None
) -> Figure:
    """Two rows of frames: the true video on top, below it the model's predictions of the same frames.

    Args:
        true_frames: `[F, C, C]` frames f_0 .. f_{F-1}.
        predicted: `[F-1, C, C]` predictions of f_1 .. f_{F-1} (pixel probabilities).
        observed: k; frames from k on were predicted free-running (their labels are marked ``*``).
        title: figure title.
        path: save the PNG there (parent folders are created); None only returns the figure.
    """
    true_np = np.asarray(true_frames.detach().cpu(), dtype=float)
    pred_np = np.asarray(predicted.detach().cpu(), dtype=float)
    F_ = true_np.shape[0]
    fig = Figure(figsize=(0.9 * F_, 2.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, F_, squeeze=False)
    for f in range(F_):
        axes[0, f].imshow(true_np[f], cmap="gray", vmin=0, vmax=1)
        axes[0, f].set_title(f"{f}{'*' if f >= observed else ''}", fontsize=7)
        if f >= 1:
            axes[1, f].imshow(pred_np[f - 1], cmap="gray", vmin=0, vmax=1)
        for row in range(2):
            axes[row, f].set_axis_off()
    axes[0, 0].text(-0.5, 0.5, "true", transform=axes[0, 0].transAxes, ha="right", va="center", fontsize=8)
    axes[1, 1].text(-0.1, 0.5, "predicted", transform=axes[1, 1].transAxes, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def predict_video(model: nn.Module, task: MovingDigitsTask, generator: torch.Generator, split: str = "test") -> Any:
    """One video and the model's predictions of it: ``(frames [F, C, C], predicted [F-1, C, C])``."""
    batch = task.sample(1, generator, split)
    with torch.no_grad():
        logits, _ = model(batch.x.to(_device(model)))
    C = task.canvas
    return batch.info["frames"][0], torch.sigmoid(logits[0]).cpu().reshape(-1, C, C)
