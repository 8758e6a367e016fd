"""Slow points over training: the paired drop test counted by hand, and the figure in three formats."""

import math

from mnemonet.analysis.over_training import drop_when_classes_added, plot_over_training


def _row(step, classes, acc, speeds=None):
    return {"step": step, "classes": classes, "window": 20, "accuracy": acc, "speeds": speeds or [1e-3, 1e-4, 1e-5]}


def test_drop_when_classes_added_counts_old_classes_only():
    rows = [
        _row(0, 2, [0.9, 0.8, 0.0]),
        _row(1, 2, [0.95, 0.7, 0.0]),  # no class added: not counted
        _row(2, 3, [0.5, 0.6, 0.3]),  # classes 0, 1 both dropped; class 2 is new
        _row(3, 3, [0.6, 0.7, 0.5]),
    ]
    assert drop_when_classes_added(rows) == {"drops": 2, "gains": 0, "p": 0.25}
    assert math.isnan(drop_when_classes_added(rows[:2])["p"])


def test_plot_over_training_writes_png_pdf_svg(tmp_path):
    rows = [_row(0, 2, [0.9, 0.8, 0.0]), _row(5, 3, [0.5, 0.6, 0.3], [2e-3, float("nan"), 1e-6])]
    path = plot_over_training({"run": rows, "other": rows}, tmp_path / "over.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "over.pdf").read_bytes()[:4] == b"%PDF" and b"<svg" in (tmp_path / "over.svg").read_bytes()
