"""Analyse a trained run folder: the figures, ``slow_points.npz`` and the self-contained ``report.html``.

:func:`analyze_run` loads a run (``config.yaml`` + a checkpoint) and composes the analysis that fits its
task and model without knowing any class: on a task that can sample trials at a fixed delay and whose
batches carry ``labels``, ``ts`` and ``ta`` (delayed recall) it runs the analysis of Haviv, Rivkind & Barak
(ICML 2019): accuracy vs delay, hidden-state PCA, slow points and their stability, per-class slow-point
speed against per-class accuracy at a long delay; on any other task, a PCA of the hidden-state
trajectories (coloured by class where the batches carry ``labels``). Models that can be traced get their
maps too: RIMs / BRIMs module-activity rasters and DNC memory maps, from the named per-step tensors that
``model.trace(x)`` returns (``"active"``; the DNC's write/read weightings, usage, gates and read modes).
Everything lands in ``RUN/analysis/`` with the report at ``RUN/report.html``;
:func:`mnemonet.analysis.report.rebuild_report` re-renders it (``mnemonet report RUN``).
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mnemonet._checks import check_positive, parse_positive_ints
from mnemonet.analysis import plots
from mnemonet.analysis.pca import PCA
from mnemonet.analysis.regularizers import answer_offset
from mnemonet.analysis.report import Section, analysis_sections, save_sections, training_section, write_report
from mnemonet.analysis.slow_points import SlowPoints
from mnemonet.analysis.speed import per_class_accuracy
from mnemonet.analysis.trajectories import Trajectories, run_trajectories

Model = Any
SUMMARY_FILE = "summary.json"
DELAY_FRACTIONS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)  # default delays, as multiples of the longest trained one
TRACE_TRIALS = 4  # sequences run through model.trace (the first one is drawn)
GENERIC_TRIALS = 128  # at most this many sequences for the PCA of a task without delayed-recall phases


def default_delays(trained_max: int, shortest: int = 1) -> list[int]:
    """Delays to test: ``DELAY_FRACTIONS`` times the longest trained delay, rounded, at least ``shortest``.

    Example:
        >>> default_delays(19, shortest=5)
        [5, 10, 19, 28, 38, 57, 95]
    """
    check_positive(trained_max, "trained_max")
    check_positive(shortest, "shortest")
    return sorted({max(shortest, round(f * trained_max)) for f in DELAY_FRACTIONS})


def parse_delays(text: str) -> list[int]:
    """``"5,10,20"`` -> ``[5, 10, 20]``; raises a ValueError naming ``--delays`` on anything else."""
    return parse_positive_ints(text, "--delays", "5,10,20")


def pick_class_delay(curve: Mapping[int, float], trained_max: int, chance: float) -> int:
    """The delay at which per-class accuracy is measured for the speed-vs-accuracy figure.

    Rule: among tested delays longer than ``trained_max``, the one whose accuracy is nearest to halfway
    between ``chance`` and the accuracy at the longest tested delay within training (so classes spread
    between remembered and forgotten); without a delay beyond training, the longest tested one.

    Args:
        curve: ``{delay: accuracy}``.
        trained_max: the longest trained delay.
        chance: chance accuracy (1 / classes).
    """
    if not curve:
        raise ValueError("curve: expected at least one delay")
    beyond = [d for d in curve if d > trained_max]
    if not beyond:
        return max(curve)
    inside = [d for d in curve if d <= trained_max]
    top = curve[max(inside)] if inside else 1.0
    middle = chance + 0.5 * (top - chance)
    return min(beyond, key=lambda d: (abs(curve[d] - middle), d))


class _Steps:
    """A rich progress display of the analysis steps, shown only on a terminal (standard error)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self._progress = None
        self._task = None
        if enabled:
            import rich.progress as rp
            from rich.console import Console

            self._progress = rp.Progress(
                rp.SpinnerColumn(),
                rp.TextColumn("[bold blue]analyse[/] {task.description}"),
                rp.BarColumn(),
                rp.MofNCompleteColumn(),
                rp.TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=total)

    def total(self, total: int) -> None:
        """Change the number of steps (known once the task is)."""
        if self._progress is not None:
            self._progress.update(self._task, total=total)

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        if self._progress is not None:
            self._progress.update(self._task, description=description)
        yield
        if self._progress is not None:
            self._progress.advance(self._task)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _load(run_dir: Path, checkpoint: str, device: str | torch.device) -> tuple[Any, str]:
    from mnemonet.app.run import load_run

    if checkpoint == "best" and not (run_dir / "checkpoints" / "best.json").is_file():
        checkpoint = "last"  # a run that never evaluated has no best checkpoint
    return load_run(run_dir, checkpoint, device=device), checkpoint


def _samples_delays(task: Any) -> bool:
    """Duck-typed delayed recall: the task samples trials at a fixed delay and evaluates accuracy vs delay."""
    return hasattr(task, "sample_at_delay") and hasattr(task, "evaluate_delays")


def _class_labels(info: Mapping[str, Tensor], batch_size: int) -> Tensor | None:
    labels = info.get("labels")
    if isinstance(labels, Tensor) and labels.shape == (batch_size,) and not labels.is_floating_point():
        return labels
    return None


def _constant_input(task: Any, model: Model) -> Tensor | None:
    """The paper's constant input I: the noise mean on the image channels, trigger off; None if unknown."""
    mean, size = getattr(task, "noise_mean", None), getattr(task, "image_size", None)
    if mean is None or size is None or model.input_size != size + 1:
        return None  # analysis_sections then averages the noise inputs of the trajectories
    x = torch.full((model.input_size,), float(mean))
    x[size] = 0.0  # the trigger channel
    return x


def _pca_section(traj: Trajectories, out: Path) -> Section:
    """PCA of all real steps' states, for tasks without delayed-recall phases."""
    S = traj.states.shape[-1]
    N = int(traj.mask.sum())
    if S < 2 or N < 3:
        return Section("Hidden-state PCA", f"Skipped: state size S = {S} and {N} states (needs S >= 2, 3 states).")
    k = min(3, S, N - 1)
    pca = PCA(k).fit(traj.states, traj.mask)
    z = pca.transform(traj.states)  # (B, T, k)
    names = ["pca_2d.png"] + (["pca_3d.png"] if k == 3 else [])
    for dims, name in zip((2, 3), names, strict=False):
        plots.plot_pca_trajectories(
            z, traj.labels, traj.mask, dims, explained=pca.explained_variance_ratio, path=out / name
        )
    pct = ", ".join(f"{100 * float(v):.1f}%" for v in pca.explained_variance_ratio)
    colour = "coloured by class" if traj.labels is not None else "one colour (the task has no class labels)"
    return Section(
        "Hidden-state PCA",
        f"PCA fitted on every real step of {len(traj)} test sequences (state size S = {S}); explained variance "
        f"of the first {k} components: {pct}. Each line is a sequence, {colour}; dots mark its last step.",
        [out / n for n in names],
    )


def _trace_sections(model: Model, x: Tensor, lengths: Tensor | None, out: Path) -> list[Section]:
    """RIMs/BRIMs module rasters and DNC memory maps, from the traces the model offers (``model.trace``)."""
    x = x[:TRACE_TRIALS]
    lengths = None if lengths is None else lengths[:TRACE_TRIALS]
    first = "the first test sequence" + ("" if lengths is None else f" ({int(lengths[0])} steps)")
    with torch.no_grad():
        _, _, traces = model.trace(x, lengths=lengths)
    sections = []
    active = next((v for k, v in traces.items() if k.split(".")[-1] == "active"), None)
    if active is not None:
        from mnemonet.analysis.module_maps import plot_module_activity

        plot_module_activity(active, 0, path=out / "module_activity.png", title="Module activity")
        rate = float(active.float().mean()) if active.numel() else float("nan")
        sections.append(
            Section(
                "Module activity (RIMs / BRIMs)",
                f"Which modules the input attention made active at each step of {first}; a filled cell is "
                f"an active module. Over {x.shape[0]} sequences, {100 * rate:.1f}% of module-steps were active.",
                [out / "module_activity.png"],
            )
        )
    memory = {k.split(".")[-1]: v for k, v in traces.items()}
    if "write_weights" in memory and "read_modes" in memory:
        from mnemonet.analysis.memory_maps import plot_memory_access

        plot_memory_access(memory, 0, path=out / "memory_access.png", title="DNC memory access")
        sections.append(
            Section(
                "Memory access (DNC)",
                f"Write and read weightings over memory slots, usage, gates and read modes at each step of {first}.",
                [out / "memory_access.png"],
            )
        )
    return sections


def _delayed_recall(
    run: Any,
    batch: Any,
    traj: Trajectories,
    out: Path,
    delays: Sequence[int] | None,
    trials: int,
    seed: int,
    finder_kwargs: Mapping[str, Any] | None,
    steps: _Steps,
    summary: dict[str, Any],
    curve: Mapping[int, float] | None,
) -> list[Section]:
    """The analysis of Haviv et al. (2019) on a delayed-recall run."""
    task, model = run.task, run.model
    dev = batch.x.device
    tested = (traj.ta - traj.ts).cpu()
    trained_max = int(getattr(task, "window", int(tested.max()) + 1)) - 1  # ta <= window - 1, ts >= 0
    shortest = int(getattr(task, "min_gap", int(tested.min())))
    C = int(traj.labels.max()) + 1
    chance = 1.0 / max(1, int(getattr(task, "num_classes", C)))
    if curve is None:
        delays = list(delays) if delays is not None else default_delays(trained_max, shortest)
        with steps.step(f"accuracy at {len(delays)} delays"):
            gen = torch.Generator().manual_seed(seed + 1)
            curve = task.evaluate_delays(model, delays, trials, gen, split="test", device=dev)
    else:
        with steps.step("accuracy vs delay (given)"):
            curve = {int(d): float(a) for d, a in sorted(curve.items())}
    class_delay = pick_class_delay(curve, trained_max, chance)
    with steps.step(f"per-class accuracy at delay {class_delay}"):
        gen = torch.Generator().manual_seed(seed + 2)
        long = task.sample_at_delay(trials, class_delay, gen, split="test").to(dev)
        lt = run_trajectories(model, long.x, labels=long.info["labels"], ts=long.info["ts"], ta=long.info["ta"],
                              answer_offset=answer_offset(long))  # fmt: skip
        keep = lt.labels < C
        acc = per_class_accuracy(lt.predictions()[keep], lt.labels[keep], C)
    note = (
        f"at delay {class_delay} ({trials} test trials; the tested delay beyond training whose accuracy is "
        "nearest halfway between chance and the accuracy within training)"
    )
    name = run.config.model.name
    with steps.step("slow points (PCA, global and per class)"):
        sections = analysis_sections(
            model, traj, out, input=_constant_input(task, model), class_accuracy=acc, accuracy_note=note,
            delay_curves={f"{name} (this run)": (list(curve), list(curve.values()))}, trained_max=trained_max,
            seed=seed, finder_kwargs=finder_kwargs, summary=summary,
        )  # fmt: skip
    points = SlowPoints.load(out / "slow_points.npz")
    summary.update(
        kind="delayed_recall",
        trained_max_delay=trained_max,
        accuracy_vs_delay={str(d): a for d, a in curve.items()},
        class_delay=class_delay,
        class_accuracy=[None if math.isnan(a) else a for a in acc.tolist()],
        stable_slow_points=None if points.eigenvalues is None else int((points.is_stable() & points.in_bounds).sum()),
    )
    return sections


def _video_sections(model: Model, task: Any, out: Path, seed: int) -> list[Section]:
    """Video prediction (moving digits): true vs predicted frames and the location probe per layer."""
    if getattr(task, "name", "") != "moving_digits":
        return []
    from mnemonet.analysis.video import location_probe, plot_frame_strip, predict_video

    frames, predicted = predict_video(model, task, torch.Generator().manual_seed(seed))
    title = "true (top) vs predicted (bottom); * = free-running"
    plot_frame_strip(frames, predicted, task.observed, title, out / "frames.png")
    probe = location_probe(model, task, torch.Generator().manual_seed(seed), batches=2, batch_size=64)
    layers = "; ".join(
        f"layer {i + 1}: R² {p['r2']:.2f}, 3x3 cell accuracy {100 * p['cell_accuracy']:.1f}%"
        for i, p in enumerate(probe)
    )
    text = (
        f"A test video: the first {task.observed} frames are given, the rest predicted from the model's own "
        f"output. Location probe (a linear map from each layer's state to the digits' centres, fit on 128 "
        f"training videos, scored on 128 validation videos): {layers}."
    )
    return [Section("Predicted frames and location probe", text, [out / "frames.png"])]


def analyze_run(
    run_dir: str | Path,
    checkpoint: str = "best",
    delays: Sequence[int] | None = None,
    trials: int = 512,
    seed: int = 0,
    *,
    device: str | torch.device = "cpu",
    finder_kwargs: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    curve: Mapping[int, float] | None = None,
) -> Path:
    """Analyse a trained run: ``RUN/analysis/`` (PNGs, ``slow_points.npz``, ``summary.json``), ``RUN/report.html``.

    Args:
        run_dir: the run folder (``config.yaml`` and ``checkpoints/``).
        checkpoint: ``"best"`` (falls back to ``"last"`` when the run never evaluated), ``"last"``, or a
            path to a checkpoint ``.json``.
        delays: delays (ta - ts) of the accuracy-vs-delay curve (delayed recall); default
            :func:`default_delays` of the longest trained delay.
        trials: test trials for the trajectories and per delay (at most ``GENERIC_TRIALS`` sequences
            for the PCA of a task without delayed-recall phases).
        seed: seed of every random draw: the trajectories' test batch uses ``seed``, the accuracy-vs-delay
            trials ``seed + 1`` (one generator through the delays in order), the per-class accuracy trials
            ``seed + 2``, the slow-point initial states ``seed``.
        device: where to run the model.
        finder_kwargs: passed to the slow-point finder (``max_steps``, ``lr``, ``tol_q``, ...).
        progress: show a progress display; None shows it when standard error is a terminal.
        curve: ``{delay: accuracy}`` already measured on this checkpoint (delayed recall); skips that
            measurement and ``delays``.

    Returns:
        The path of ``report.html``.

    Raises:
        ConfigError: ``run_dir`` is not a run folder; CheckpointError: no or damaged checkpoint;
        ValueError: bad ``trials`` or ``delays``.
    """
    from mnemonet.training.config import ConfigError

    check_positive(trials, "trials")
    if delays is not None:
        delays = [int(d) for d in delays]
        if not delays or any(d < 1 for d in delays):
            raise ValueError(f"delays: expected a non-empty list of integers >= 1, got {delays!r}")
    run_dir = Path(run_dir).resolve()  # the sections' image paths are then absolute, whatever the cwd
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.yaml)")
    out = run_dir / "analysis"
    started = time.perf_counter()
    enabled = sys.stderr.isatty() if progress is None else progress
    steps = _Steps(5, enabled)
    try:
        with steps.step("loading the run"):
            run, used = _load(run_dir, checkpoint, device)
        out.mkdir(parents=True, exist_ok=True)
        model, task = run.model.eval(), run.task
        summary: dict[str, Any] = {"run": str(run_dir), "checkpoint": used, "step": run.step,
                                   "model": run.config.model.name, "task": run.config.task.name, "trials": trials,
                                   "seed": seed}  # fmt: skip
        with steps.step("trajectories"):
            n = trials if _samples_delays(task) else min(trials, GENERIC_TRIALS)
            batch = task.sample(n, torch.Generator().manual_seed(seed), "test").to(device)
            if _samples_delays(task) and {"labels", "ts", "ta"} <= set(batch.info):
                info = batch.info
                traj = run_trajectories(model, batch.x, batch.lengths, labels=info["labels"], ts=info["ts"],
                                        ta=info["ta"], answer_offset=answer_offset(batch))  # fmt: skip
            else:
                traj = run_trajectories(model, batch.x, batch.lengths, labels=_class_labels(batch.info, len(batch.x)))
        if traj.phases is not None:
            steps.total(7)
            sections = _delayed_recall(
                run, batch, traj, out, delays, trials, seed, finder_kwargs, steps, summary, curve
            )
        else:
            summary["kind"] = "generic"
            with steps.step("PCA"):
                sections = [_pca_section(traj, out)]
        with steps.step("memory and module maps"):
            sections += _trace_sections(model, batch.x, batch.lengths, out)
            sections += _video_sections(model, task, out, seed)
        with steps.step("report"):
            summary["seconds"] = round(time.perf_counter() - started, 2)
            summary["slow_point_search"] = dict(finder_kwargs or {})
            sections.append(_settings_section(run, used, checkpoint, trials, seed, summary))
            save_sections(run_dir, sections)
            (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
            train = training_section(run_dir)
            path = write_report(run_dir, ([train] if train is not None else []) + sections)
    finally:
        steps.close()
    return path


def analyze_over_training(
    run_dir: str | Path,
    delay: int | None = None,
    trials: int = 300,
    seed: int = 0,
    max_steps: int = 500,
    device: str | torch.device = "cpu",
) -> Path:
    """Slow points over training (the paper's Fig. 5) from a delayed-recall run's kept checkpoints.

    Loads every step checkpoint in ``RUN/checkpoints`` (keep them with ``trainer.checkpoint_every=N`` and a
    large ``trainer.keep_checkpoints``), follows each class's slow point and accuracy at ``delay``
    (:func:`mnemonet.analysis.over_training.class_speeds_over_training`), writes
    ``analysis/over_training.json`` and ``analysis/over_training.png`` (+ PDF, SVG), adds a report section and
    re-renders ``report.html``.

    Args:
        run_dir: the run folder.
        delay: the delay of the per-class accuracy; default twice the longest trained delay.
        trials, seed, max_steps: trials per measurement, their seed, Adam steps of each search.
        device: where to run the models.

    Returns:
        The path of ``report.html``.
    """
    from mnemonet.analysis.over_training import class_speeds_over_training, drop_when_classes_added, plot_over_training
    from mnemonet.analysis.report import load_sections, rebuild_report
    from mnemonet.training.checkpoint import atomic_write_text, list_checkpoints
    from mnemonet.training.config import ConfigError

    run_dir = Path(run_dir).resolve()
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        raise ConfigError(f"{run_dir}: no step checkpoints to follow over training")
    first = _load(run_dir, str(found[0]), device)[0]
    if not _samples_delays(first.task):
        raise ConfigError(f"{run_dir}: --over-training needs a delayed-recall run, got task {first.config.task.name}")
    delay = 2 * (int(first.task.t_max) - 1) if delay is None else int(delay)

    def loaded() -> Iterator[tuple[int, Model, Any]]:
        for path in found:
            run = _load(run_dir, str(path), device)[0]
            yield run.step, run.model, run.task

    rows = class_speeds_over_training(loaded(), delay, trials=trials, max_steps=max_steps, seed=seed)
    out = run_dir / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    test = drop_when_classes_added(rows)
    atomic_write_text(out / "over_training.json", json.dumps({"delay": delay, "rows": rows, "drop_test": test},
                                                             indent=1) + "\n")  # fmt: skip
    plot_over_training({run_dir.name: rows}, out / "over_training.png")
    stages = sum(1 for a, b in itertools.pairwise(rows) if (a["classes"], a["window"]) != (b["classes"], b["window"]))
    text = (
        f"Each class's slow point (the in-bounds point with the lowest q of 8 searches, {max_steps} Adam steps and a "
        f"float64 polish) at each of the {len(rows)} kept checkpoints, and each class's accuracy at delay {delay}; "
        f"{stages} checkpoints fall in a new curriculum stage (dashed). "
    )
    if test["drops"] + test["gains"]:
        text += (
            f"Where classes were added, {test['drops']} old classes lost accuracy and {test['gains']} gained "
            f"(one-sided sign test p = {test['p']:.3g}). "
        )
    text += "Numbers in analysis/over_training.json."
    sections = [s for s in load_sections(run_dir) if s.title != "Slow points over training"]
    sections.append(Section("Slow points over training", text, [out / "over_training.png"]))
    save_sections(run_dir, sections)
    return rebuild_report(run_dir)


def _settings_section(run: Any, used: str, asked: str, trials: int, seed: int, summary: Mapping[str, Any]) -> Section:
    desc = " ".join(str(run.config.description).split())
    fallback = " (no best checkpoint: the run never evaluated)" if used != asked else ""
    search = summary.get("slow_point_search") or {}
    budget = f"; slow-point searches: {search['max_steps']} Adam steps each" if "max_steps" in search else ""
    text = (
        f"Model {run.config.model.name}, task {run.config.task.name}, checkpoint {used}{fallback} at step "
        f"{run.step}; {trials} test trials, seed {seed}{budget}; analysis took {summary['seconds']:.1f} s. "
        "Numbers are in analysis/summary.json."
    )
    return Section("Run and analysis settings", text + (f"\n\n{desc}" if desc else ""))


__all__ = [
    "DELAY_FRACTIONS",
    "analyze_over_training",
    "analyze_run",
    "default_delays",
    "parse_delays",
    "pick_class_delay",
]
