"""The analysis report of a run: figures and slow points under ``RUN/analysis/``, and one self-contained HTML page.

``analysis_sections`` runs the standard analysis of Haviv, Rivkind & Barak (ICML 2019) on trajectories of
a trained model (PCA, slow points and their stability, per-class slow points against per-class accuracy,
accuracy vs delay when given), writing PNGs and ``slow_points.npz`` to ``analysis/`` and returning report
sections; ``write_report`` renders sections as ``RUN/report.html`` with every PNG embedded as a base64 data
URI (the page needs no other file); ``rebuild_report`` re-renders it from ``analysis/sections.json`` with
fresh training curves (``mnemonet report RUN``). The CLI composes these pieces.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from mnemonet._checks import check_positive
from mnemonet.analysis import plots
from mnemonet.analysis.pca import PCA
from mnemonet.analysis.slow_points import STABILITY_MARGIN, find_attractors, find_slow_points
from mnemonet.analysis.speed import class_slow_points, per_class_accuracy, speed_vs_accuracy
from mnemonet.analysis.trajectories import DELAY, IMAGE, Trajectories, sample_rows

Model = Any
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS_FILE = "sections.json"


class Section(NamedTuple):
    """One part of the report: a title, plain text (blank lines separate paragraphs) and PNG paths."""

    title: str
    text: str = ""
    images: Sequence[str | Path] = ()


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
figure { display: inline-block; margin: .5em; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .8em; color: #666; text-align: center; } p { line-height: 1.45; }
"""


def _image_path(run_dir: Path, image: str | Path) -> Path:
    p = Path(image)
    return p if p.is_absolute() else run_dir / p


def write_report(run_dir: str | Path, sections: Sequence[Section | tuple], title: str | None = None) -> Path:
    """Write ``run_dir/report.html``, self-contained.

    Every image is read, checked to be a PNG and embedded as a ``data:image/png;base64`` URI; an image
    that is not already under ``run_dir/analysis/`` is copied there, so the PNGs are also kept as files.

    Args:
        run_dir: the run folder.
        sections: ``(title, text, [png paths])`` each; relative paths are relative to ``run_dir``.
        title: page title (default: the run folder's name).

    Returns:
        The path of ``report.html``.

    Raises:
        ValueError: an image is missing or not a PNG.
    """
    run_dir = Path(run_dir).resolve()  # image paths relative to the run are read against it, whatever the cwd
    analysis = run_dir / "analysis"
    analysis.mkdir(parents=True, exist_ok=True)
    title = title or f"mnemonet analysis: {run_dir.name}"
    body = [f"<h1>{html.escape(title)}</h1>"]
    for i, sec in enumerate(sections):
        sec = Section(*sec)
        body.append(f"<section><h2>{html.escape(sec.title)}</h2>")
        for para in [p for p in sec.text.split("\n\n") if p.strip()]:
            body.append(f"<p>{html.escape(para.strip()).replace(chr(10), '<br>')}</p>")
        for image in sec.images:
            path = _image_path(run_dir, image)
            if not path.is_file():
                raise ValueError(f"sections[{i}]: image {path} does not exist")
            data = path.read_bytes()
            if not data.startswith(PNG_MAGIC):
                raise ValueError(f"sections[{i}]: image {path} is not a PNG")
            if analysis.resolve() not in path.resolve().parents:
                shutil.copyfile(path, analysis / path.name)
            uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
            alt = html.escape(path.stem.replace("_", " "))
            body.append(f'<figure><img src="{uri}" alt="{alt}"><figcaption>{alt}</figcaption></figure>')
        body.append("</section>")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    out = run_dir / "report.html"
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def save_sections(run_dir: str | Path, sections: Sequence[Section | tuple]) -> Path:
    """Record sections in ``analysis/sections.json`` (image paths relative to ``run_dir``) for rebuilding."""
    run_dir = Path(run_dir)
    rows = []
    for sec in sections:
        sec = Section(*sec)
        images = []
        for image in sec.images:
            p = _image_path(run_dir, image)
            try:
                images.append(str(p.resolve().relative_to(run_dir.resolve())))
            except ValueError:
                images.append(str(p))
        rows.append({"title": sec.title, "text": sec.text, "images": images})
    path = run_dir / "analysis" / SECTIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path


def load_sections(run_dir: str | Path) -> list[Section]:
    """The sections recorded by :func:`save_sections` (empty when there are none)."""
    path = Path(run_dir) / "analysis" / SECTIONS_FILE
    if not path.is_file():
        return []
    return [Section(r["title"], r.get("text", ""), list(r.get("images", []))) for r in json.loads(path.read_text())]


def training_section(run_dir: str | Path, keys: Sequence[str] | None = None) -> Section | None:
    """Training curves from ``run_dir/metrics.jsonl`` (written to ``analysis/training_curves.png``), or None."""
    run_dir = Path(run_dir).resolve()
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        return None
    records = plots.read_metrics(metrics)
    if not records:
        return None
    png = run_dir / "analysis" / "training_curves.png"
    try:
        plots.plot_training_curves(records, keys=keys, path=png)
    except ValueError:
        return None
    last = records[-1]
    summary = ", ".join(f"{k} = {v:.4g}" for k, v in last.items() if isinstance(v, float))
    return Section("Training curves", f"{len(records)} evaluations in metrics.jsonl. Last: {summary}.", [png])


def rebuild_report(run_dir: str | Path, title: str | None = None) -> Path:
    """Re-render ``report.html`` from ``analysis/sections.json``, with training curves redrawn from metrics."""
    run_dir = Path(run_dir)
    sections = [s for s in load_sections(run_dir) if s.title != "Training curves"]
    train = training_section(run_dir)
    return write_report(run_dir, ([train] if train else []) + sections, title)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def analysis_sections(
    model: Model,
    traj: Trajectories,
    out_dir: str | Path,
    *,
    input: Tensor | None = None,
    num_initial: int = 128,
    noise: float = 0.01,
    per_class: int = 16,
    class_accuracy: Tensor | None = None,
    accuracy_note: str = "at the delays of the analysed batch",
    delay_curves: Mapping[str, tuple[Any, Any]] | None = None,
    trained_max: float | None = None,
    seed: int = 0,
    finder_kwargs: Mapping[str, Any] | None = None,
    attractor_steps: int = 400,
    summary: dict[str, Any] | None = None,
) -> list[Section]:
    """The standard analysis of one trained model, as report sections; files go to ``out_dir``.

    Writes ``pca_2d.png``, ``pca_3d.png`` (when S >= 3), ``slow_points.png``, ``eigenvalues.png``,
    ``slow_points.npz`` (all slow points), and with labels and trial times ``class_slow_points.npz`` and
    ``speed_vs_accuracy.png``; with ``delay_curves`` also ``accuracy_vs_delay.png``.

    Args:
        model: the trained model (eval mode).
        traj: its trajectories (:func:`run_trajectories`), with labels, ts and ta for the per-class part.
        out_dir: the ``analysis/`` folder.
        input: the constant input I `[D]`; default: the mean input of the pre-image and delay steps
            (delayed recall: the noise mean with the trigger off), which needs phases.
        num_initial: initial states of the global slow-point search, drawn from the image and delay
            steps (all real steps without phases).
        noise: standard deviation of the noise added to the initial states.
        per_class: initial states per class for the per-class slow points.
        class_accuracy: `[C]` per-class accuracy at long delays; default: at ``ta`` of ``traj``.
        accuracy_note: how ``class_accuracy`` was measured, for the text.
        delay_curves: ``{label: (delays, accuracies)}`` for :func:`plots.plot_accuracy_vs_delay`.
        trained_max: longest trained delay (vertical line).
        seed: seed of every random draw.
        finder_kwargs: passed to the slow-point finders.
        attractor_steps: forward steps of :func:`find_attractors` from the end-of-delay states (0: skip).
        summary: a dict to fill with the numbers of the report (counts, attractors, Spearman ρ and p).

    Returns:
        Sections in report order.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_positive(num_initial, "num_initial")
    g = torch.Generator().manual_seed(seed)
    fk = dict(finder_kwargs or {})
    sections: list[Section] = []
    has_phases = traj.phases is not None
    if input is None:
        if not has_phases:
            raise ValueError("input: expected the constant input I (D,) when the trajectories have no phases")
        pool = traj.noise_inputs()  # (N, D)
        if pool.shape[0] == 0:
            raise ValueError("input: expected the constant input I (D,); the trajectories have no noise step")
        input = pool.mean(0)
    memory = (traj.select(IMAGE) | traj.select(DELAY)) if has_phases else traj.mask  # (B, T)
    S = traj.states.shape[-1]
    if S < 2:
        raise ValueError(f"traj: expected a state size S >= 2 for the PCA figures, got {S}")
    k = min(3, S)
    pca = PCA(k).fit(traj.states, memory)
    z = pca.transform(traj.states)  # (B, T, k)
    ev = pca.explained_variance_ratio
    names = ["pca_2d.png"] + (["pca_3d.png"] if k == 3 else [])
    for dims, name in zip((2, 3), names, strict=False):
        plots.plot_pca_trajectories(z, traj.labels, memory, dims, explained=ev, path=out / name)
    pct = ", ".join(f"{100 * float(v):.1f}%" for v in ev)
    what = "image and delay steps" if has_phases else "all steps"
    sections.append(
        Section(
            "Hidden-state PCA",
            f"PCA fitted on the {what} of {len(traj)} trials (state size S = {S}); "
            f"explained variance of the first {k} components: {pct}. Each line is a trial coloured by "
            "class; dots mark the last drawn step (the end of the delay).",
            [out / n for n in names],
        )
    )

    rows = traj.states[memory]  # (N, S)
    x0 = sample_rows(rows.detach().cpu(), num_initial, noise, g)[0]
    summary = {} if summary is None else summary
    points = find_slow_points(model, input, x0, **fk)
    points.save(out / "slow_points.npz")
    inside = points[points.in_bounds]
    counts = points.counts()
    summary["slow_points"] = {"distinct": len(points), "in_bounds": len(inside), **counts}
    plots.plot_slow_points(pca, inside, traj.states, traj.labels, memory, path=out / "slow_points.png")
    imgs = [out / "slow_points.png"]
    text = f"Minimising q(h) = ½‖F(h, I) − h‖² (half the paper's speed) from {num_initial} states of the {what} "
    text += f"(noise σ = {noise}) under the constant input I, then a float64 Levenberg–Marquardt polish, gave "
    text += f"{len(points)} distinct points: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items())
    text += (
        ". Converged means q below the tolerance of the dtype or a vanishing gradient; out of bounds means the "
        "search left the states the network can reach (a GRU's |h| ≤ 1) and is not shown."
    )
    if len(inside):
        text += f" In bounds: {len(inside)}, speeds from {_fmt(float(inside.speeds.min()))} to "
        text += f"{_fmt(float(inside.speeds.max()))}"
        if inside.eigenvalues is not None:
            labels = inside.stability()
            share = {k: labels.count(k) for k in ("stable", "marginal", "unstable")}
            summary["slow_points"]["stability"] = share
            text += f"; {share['stable']} stable, {share['marginal']} marginal, {share['unstable']} unstable "
            text += f"(largest |λ| of dF/dh below, within or above 1 ± {STABILITY_MARGIN:g})"
            plots.plot_eigenvalues(inside, path=out / "eigenvalues.png")
            imgs.append(out / "eigenvalues.png")
        text += "."
    sections.append(Section("Slow points", text + " All points are in analysis/slow_points.npz.", imgs))

    if traj.labels is not None and traj.ta is not None and attractor_steps > 0:
        ends, end_labels = traj.end_of_delay(), traj.labels
        att = find_attractors(model, input, ends, attractor_steps)
        att.points.save(out / "attractors.npz")
        C = int(end_labels.max()) + 1
        share = att.basin_share(end_labels, C)  # (A, C)
        stab = att.points.stability() if len(att.points) else []
        rows = []
        for a in range(len(att.points)):
            classes = ", ".join(f"{c}: {100 * float(share[a, c]):.0f}%" for c in range(C) if share[a, c] > 0)
            rows.append(
                f"attractor {a}: q = {_fmt(float(att.points.speeds[a]))} ({att.points.reasons[a]}), "
                f"largest |λ| {float(att.points.eigenvalues[a].abs().max()):.4f} ({stab[a]}); basin by class {classes}"
            )
        summary["attractors"] = [
            {"speed": float(att.points.speeds[a]), "stop_reason": att.points.reasons[a], "stability": stab[a],
             "largest_abs_eigenvalue": float(att.points.eigenvalues[a].abs().max()),
             "basin_share": [float(v) for v in share[a]]}
            for a in range(len(att.points))
        ]  # fmt: skip
        plots.plot_slow_points(pca, att.points, traj.states, traj.labels, memory, path=out / "attractors.png")
        sections.append(
            Section(
                "Attractors",
                f"Running the network forward for {attractor_steps} steps under I from the {len(ends)} end-of-delay "
                f"states, merging the ends within 0.01 and polishing each in float64 gave {len(att.points)} "
                f"attractor(s); {int((att.basin < 0).sum())} trajectories had not settled on one."
                + ("\n\n" + "; ".join(rows) + "." if rows else ""),
                [out / "attractors.png"],
            )
        )

    if traj.labels is not None and traj.ta is not None:
        per = class_slow_points(
            model, input, traj.end_of_delay(), traj.labels, per_class=per_class, noise=noise, generator=g, **fk
        )
        per.save(out / "class_slow_points.npz")
        C = int(traj.labels.max()) + 1
        if class_accuracy is None:
            class_accuracy = per_class_accuracy(traj.predictions(), traj.labels, C)
        acc = torch.as_tensor(class_accuracy, dtype=torch.float64).cpu()
        if acc.shape != (C,):
            raise ValueError(f"class_accuracy: expected shape ({C},), got {tuple(acc.shape)}")
        cls = per.labels if per.labels is not None else torch.zeros(0, dtype=torch.int64)
        rho, p = speed_vs_accuracy(per.speeds, acc[cls]) if len(per) >= 3 else (float("nan"), float("nan"))
        summary["speed_vs_accuracy"] = {"spearman_rho": None if rho != rho else rho, "p": None if p != p else p,
                                        "classes": len(per), "missing_classes": C - len(per)}  # fmt: skip
        listing = "; ".join(
            f"class {int(c)}: q = {_fmt(float(q))} ({r}), accuracy {float(a):.3f}"
            for c, q, r, a in zip(cls, per.speeds, per.reasons, acc[cls], strict=True)
        )
        missing = C - len(per)
        gone = f" {missing} class(es) had no slow point in bounds and are left out." if missing else ""
        images = []
        if len(per):
            plots.plot_speed_vs_accuracy(per.speeds, acc[cls], cls, rho, p, path=out / "speed_vs_accuracy.png")
            images.append(out / "speed_vs_accuracy.png")
        sections.append(
            Section(
                "Slow-point speed vs accuracy",
                f"One slow point per class, grown from that class's end-of-delay states (of each class's in-bounds "
                f"points, the one with the lowest q).{gone} Accuracy {accuracy_note}. Spearman ρ = {rho:.3f} "
                f"(permutation p = {p:.3g}); the paper expects ρ < 0: slower points, better memory."
                + (f"\n\n{listing}." if listing else ""),
                images,
            )
        )

    if delay_curves:
        plots.plot_accuracy_vs_delay(delay_curves, trained_max=trained_max, path=out / "accuracy_vs_delay.png")
        sections.append(
            Section(
                "Accuracy vs delay",
                "Accuracy at delays beyond the trained range"
                + ("" if trained_max is None else f" (longest trained delay {trained_max}, dashed)")
                + "; bands: mean ± std over seeds.",
                [out / "accuracy_vs_delay.png"],
            )
        )
    return sections
