"""``mnemonet demo``: train a GRU on delayed recall of digits with the delay curriculum, then test memory.

The demo trains the preset ``delayed_recall_gru-small`` (Haviv et al. 2019's delayed-recall task on
scikit-learn's 8x8 digits, a 100-unit GRU, the DeCu curriculum up to Tmax = 20), then measures the
accuracy at the answer step for fixed delays from inside the trained range (at most Tmax - 1 = 19
steps) out to several times it, on test images. It prints the table, saves
``accuracy_vs_delay.png`` and ``accuracy_vs_delay.json`` in the run folder, then analyses the run
(:func:`mnemonet.app.run_analysis.analyze_run`: hidden-state PCA, slow points, slow-point speed vs
per-class accuracy) and says where the run and its ``report.html`` are.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mnemonet.app.run import train
from mnemonet.training.checkpoint import atomic_write_bytes, atomic_write_text
from mnemonet.training.config import load_config
from mnemonet.training.device import num_threads

DEMO_PRESET = "delayed_recall_gru-small"
DEMO_DELAYS = (5, 10, 15, 19, 30, 40, 60, 100)
CHANCE = 0.1  # ten digit classes


@dataclass
class DemoResult:
    """What the demo measured.

    Attributes:
        run_dir: the run folder.
        accuracy: ``{delay: accuracy at the answer step}`` on test images.
        trained_delays: ``(shortest, longest)`` delay seen in training at the final curriculum stage.
        train_seconds: wall-clock time of training.
        plot: path of ``accuracy_vs_delay.png``.
        report: path of ``report.html``, or None when the demo ran without the analysis.
        analysis_seconds: wall-clock time of the analysis (0 without it).
    """

    run_dir: Path
    accuracy: dict[int, float]
    trained_delays: tuple[int, int]
    train_seconds: float
    plot: Path
    report: Path | None = None
    analysis_seconds: float = 0.0


def plot_accuracy_vs_delay(accuracy: dict[int, float], trained: tuple[int, int], title: str = "") -> bytes:
    """A PNG of accuracy against delay with the trained range shaded and chance marked (matplotlib Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    delays = sorted(accuracy)
    ax.axvspan(trained[0], trained[1], color="tab:green", alpha=0.15, label="trained delays")
    ax.plot(delays, [accuracy[d] for d in delays], "o-", color="tab:blue", label="GRU")
    ax.axhline(CHANCE, color="gray", linestyle="--", label="chance (10 classes)")
    ax.set_xlabel("delay ta - ts (steps)")
    ax.set_ylabel("accuracy at the answer step")
    ax.set_ylim(0, 1.02)
    ax.set_title(title or "Delayed recall: accuracy vs delay")
    ax.legend(loc="lower left")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def run_demo(
    out: str | Path | None = None,
    threads: int | None = None,
    steps: int | None = None,
    device: str | None = None,
    quiet: bool = False,
    delays: Sequence[int] = DEMO_DELAYS,
    trials: int = 1000,
    analyze: bool = True,
) -> DemoResult:
    """Train the demo preset, measure accuracy vs delay, print a table, save a plot, analyse the run.

    Args:
        out: run folder (default ``runs/demo-<time>``).
        threads: CPU intra-op threads (default: the preset's, else the measured default).
        steps: training steps (default: the preset's).
        device: ``auto``, ``cpu``, ``cuda``, ``mps``.
        quiet: no progress bar and no printed table.
        delays: delays to test.
        trials: test trials per delay (and for the analysis's trajectories and per-class accuracy).
        analyze: end with the analysis and ``report.html`` (about 10 s on 2 idle cores, most of it the two
            slow-point searches).
    """
    from rich.console import Console
    from rich.table import Table

    from mnemonet.tasks import evaluate_delays

    config = load_config(DEMO_PRESET, [f"trainer.steps={steps}"] if steps else [])
    started = time.perf_counter()
    result, run = train(config, out=out, threads=threads, device=device, progress="off" if quiet else None,
                        source="demo")  # fmt: skip
    seconds = time.perf_counter() - started
    out = Path(run.path)  # the run folder train made (``runs/demo-<time>-<suffix>`` without ``out``)
    task = run.task
    trained = (task.min_gap, task.window - 1)
    model = run.model.eval()
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(config.trainer.seed + 4_000_037)
    with num_threads(threads if threads is not None else config.trainer.threads):
        accuracy = evaluate_delays(model, task, delays, trials, gen, split="test", device=dev)
    title = f"GRU {config.model.kwargs.get('hidden_size', '')} on delayed recall, {result.step} steps"
    plot = atomic_write_bytes(out / "accuracy_vs_delay.png", plot_accuracy_vs_delay(accuracy, trained, title))
    record = {"step": result.step, "train_seconds": seconds, "trained_delays": list(trained), "trials": trials,
              "accuracy": {str(k): v for k, v in accuracy.items()}}  # fmt: skip
    atomic_write_text(out / "accuracy_vs_delay.json", json.dumps(record, indent=1) + "\n")
    if not quiet:
        console = Console(soft_wrap=True)
        table = Table(title=f"Delayed recall accuracy vs delay ({trials} test trials each; chance 10%)")
        table.add_column("delay", justify="right")
        table.add_column("accuracy", justify="right")
        table.add_column("")
        for d, acc in accuracy.items():
            note = "trained" if trained[0] <= d <= trained[1] else f"{d / trained[1]:.1f}x longest trained"
            table.add_row(str(d), f"{acc:.1%}", note)
        console.print(table)
        console.print(f"trained {result.step} steps in {seconds:.0f} s; curriculum {task.window}/{task.t_max}")
        console.print(f"run folder: {out}\nplot: {plot}")
    report, analysis_seconds = None, 0.0
    if analyze:
        from mnemonet.app.run_analysis import analyze_run

        if not quiet:
            console.print("analysing the run (PCA, slow points, speed vs accuracy) ...")
        started = time.perf_counter()
        with num_threads(threads if threads is not None else config.trainer.threads):
            # "last" is the model measured above; its accuracy-vs-delay curve is reused
            report = analyze_run(out, "last", trials=trials, seed=config.trainer.seed, device=dev, curve=accuracy,
                                 progress=False if quiet else None)  # fmt: skip
        analysis_seconds = time.perf_counter() - started
        if not quiet:
            console.print(f"analysed in {analysis_seconds:.0f} s; report: {report}")
    return DemoResult(out, accuracy, trained, seconds, plot, report, analysis_seconds)


__all__ = ["DEMO_DELAYS", "DEMO_PRESET", "DemoResult", "plot_accuracy_vs_delay", "run_demo"]
