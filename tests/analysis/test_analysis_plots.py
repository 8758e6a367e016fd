"""Figures: each returns a Figure, writes a PNG, draws what it was given, and rejects bad input."""

import json

import pytest
import torch
from analysis_toy_models import tanh_model
from matplotlib.figure import Figure

from mnemonet.analysis import plots
from mnemonet.analysis.pca import PCA
from mnemonet.analysis.slow_points import SlowPoints, find_slow_points

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG


def test_pca_trajectories_2d_and_3d(tmp_path):
    z = torch.randn(5, 7, 3)
    labels = torch.tensor([0, 1, 2, 0, 1])
    mask = torch.ones(5, 7, dtype=torch.bool)
    mask[0, 4:] = False
    fig = plots.plot_pca_trajectories(z, labels, mask, dims=2, path=tmp_path / "a" / "pca.png")
    assert isinstance(fig, Figure) and _is_png(tmp_path / "a" / "pca.png")
    ax = fig.axes[0]
    assert len(ax.lines) == 5 and len(ax.collections) == 5  # one line and one end point per trial
    assert len(ax.lines[0].get_xdata()) == 4  # the masked steps are not drawn
    assert ax.lines[0].get_color() == ax.lines[3].get_color() != ax.lines[1].get_color()
    fig3 = plots.plot_pca_trajectories(z, labels, dims=3, path=tmp_path / "pca3.png")
    assert fig3.axes[0].name == "3d" and _is_png(tmp_path / "pca3.png")
    with pytest.raises(ValueError, match="dims"):
        plots.plot_pca_trajectories(z, labels, dims=4)
    with pytest.raises(ValueError, match="projected"):
        plots.plot_pca_trajectories(torch.randn(5, 7, 2), dims=3)
    with pytest.raises(ValueError, match="labels"):
        plots.plot_pca_trajectories(z, labels[:3])


def test_slow_points_and_eigenvalues(tmp_path):
    W = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    model = tanh_model(W)
    x0 = torch.randn(10, 2, dtype=torch.float64)
    sp = find_slow_points(model, torch.zeros(1, dtype=torch.float64), x0)
    traj = torch.randn(4, 6, 2, dtype=torch.float64)
    pca = PCA(2).fit(traj)
    fig = plots.plot_slow_points(pca, sp, traj, torch.tensor([0, 1, 0, 1]), path=tmp_path / "sp.png")
    assert _is_png(tmp_path / "sp.png")
    markers = [c for c in fig.axes[0].collections if c.get_zorder() == 5]
    assert len(markers) == len(sp) == 3
    assert "3 points" in fig.axes[0].get_title()
    fig = plots.plot_eigenvalues(sp, path=tmp_path / "eig.png")
    assert _is_png(tmp_path / "eig.png") and len(fig.axes[0].collections) == 3
    with pytest.raises(ValueError, match="eigenvalues"):
        plots.plot_eigenvalues(SlowPoints(sp.states, sp.speeds, sp.converged, sp.origin))


def test_speed_vs_accuracy_title_has_rho(tmp_path):
    fig = plots.plot_speed_vs_accuracy([1e-6, 1e-4, 1e-2], [0.9, 0.6, 0.2], path=tmp_path / "sva.png")
    assert "ρ = -1.000" in fig.axes[0].get_title() and "p = 0.333" in fig.axes[0].get_title()
    assert fig.axes[0].get_xscale() == "log" and _is_png(tmp_path / "sva.png")
    with pytest.raises(ValueError, match="speeds, accuracies"):
        plots.plot_speed_vs_accuracy([1.0, 2.0], [0.5])


def test_accuracy_vs_delay_bands_for_several_seeds(tmp_path):
    delays = [5, 10, 20, 40]
    runs = {
        "VoCu": (delays, torch.tensor([[1.0, 0.9, 0.8, 0.5], [1.0, 0.95, 0.7, 0.4]])),
        "DeCu": (delays, [1.0, 0.8, 0.5, 0.2]),
    }
    fig = plots.plot_accuracy_vs_delay(runs, trained_max=20, chance=0.1, path=tmp_path / "avd.png")
    ax = fig.axes[0]
    assert _is_png(tmp_path / "avd.png")
    assert len(ax.collections) == 1  # one band: only VoCu has several seeds
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["VoCu (n=2)", "DeCu"]
    torch.testing.assert_close(
        torch.tensor(ax.lines[0].get_ydata()), torch.tensor([1.0, 0.925, 0.75, 0.45], dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="runs"):
        plots.plot_accuracy_vs_delay({"x": (delays, [1.0, 0.5])})
    with pytest.raises(ValueError, match="runs"):
        plots.plot_accuracy_vs_delay({})


def test_training_curves_from_metrics_jsonl(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": i * 10, "loss": 1.0 / (i + 1), "accuracy": 0.1 * i, "split": "valid"} for i in range(5)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert plots.read_metrics(path) == rows
    fig = plots.plot_training_curves(path, path=tmp_path / "curves.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"] and _is_png(tmp_path / "curves.png")
    assert list(fig.axes[1].lines[0].get_ydata()) == [r["accuracy"] for r in rows]
    with pytest.raises(ValueError, match="records"):
        plots.plot_training_curves([{"step": 1, "split": "x"}])
    path.write_text("{not json}\n")
    with pytest.raises(ValueError, match="line 1"):
        plots.read_metrics(path)


def test_training_curves_draw_the_logged_training_loss(tmp_path):
    rows = [
        {"step": 10, "train_loss": 0.8, "train_curve": [[5, 0.9], [10, 0.7]], "valid_accuracy": 0.5},
        {"step": 20, "train_loss": 0.4, "train_curve": [[15, 0.5], [20, 0.3]], "valid_accuracy": 0.9},
    ]
    fig = plots.plot_training_curves(rows)
    loss = fig.axes[0]
    assert loss.get_title() == plots._words("train_loss")
    curve, means = loss.lines  # the logged curve, then the per-evaluation means
    assert list(curve.get_xdata()) == [5, 10, 15, 20] and list(curve.get_ydata()) == [0.9, 0.7, 0.5, 0.3]
    assert list(means.get_ydata()) == [0.8, 0.4]
    assert len(loss.get_legend().get_texts()) == 2
    # a curve alone (no train_loss key) still gets its panel
    fig = plots.plot_training_curves([{k: v for k, v in r.items() if k != "train_loss"} for r in rows])
    assert list(fig.axes[0].lines[0].get_ydata()) == [0.9, 0.7, 0.5, 0.3]
