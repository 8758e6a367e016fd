"""The ``mnemonet`` command line (typer): train, eval, analyze, report, sample, summary, presets, demo.

Every command maps a configuration error, a damaged checkpoint or a failed run to one line on
standard error starting with ``error:`` and a non-zero exit code (2 for bad configuration or
arguments, 1 for failures while running). Several processes: ``torchrun --nproc_per_node N -m
mnemonet train PRESET ...``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="mnemonet",
    help="Recurrent networks with memory: train them on memory tasks and look inside them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Config override KEY=VALUE (repeatable), e.g. --set trainer.lr=1e-3."),
]
CheckpointOption = Annotated[
    str,
    typer.Option(
        help="best (default: the best validation weights, or the newest checkpoint if none), last, or a "
        "checkpoint .json path."
    ),
]
DeviceOption = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
ThreadsOption = Annotated[int | None, typer.Option("--threads", min=1, help="CPU intra-op threads.")]


def _fail(err: Exception, code: int) -> typer.Exit:
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(code)


def _run_guarded(fn, *args, **kwargs):
    """Call ``fn`` and turn the library's errors into one ``error:`` line and an exit code."""
    from mnemonet.errors import CheckpointError, ConfigError, TrainingError

    try:
        return fn(*args, **kwargs)
    except ConfigError as err:
        raise _fail(err, 2) from None
    except (CheckpointError, TrainingError) as err:
        raise _fail(err, 1) from None
    except ValueError as err:
        raise _fail(err, 2) from None
    except OSError as err:  # disk full, no permission, a folder gone: the file and what to do
        raise _fail(OSError(_os_error_text(err)), 1) from None


def _os_error_text(err: OSError) -> str:
    """``PATH: No space left on device; free some space ...``: one line for a failed file operation."""
    import errno

    where = err.filename or "a file"
    reason = err.strerror or str(err)
    fixes = {
        errno.ENOSPC: "free some space or write the run elsewhere (--out)",
        errno.EDQUOT: "free some space or write the run elsewhere (--out)",
        errno.EACCES: "check the folder's permissions or write elsewhere (--out)",
        errno.EROFS: "write the run to a writable folder (--out)",
    }
    fix = fixes.get(err.errno or 0, "check the path and try again")
    return f"{where}: {reason}; {fix}"


def _console():
    from rich.console import Console

    return Console(soft_wrap=True)


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------


@app.command()
def train(
    config: Annotated[
        str | None,
        typer.Argument(
            metavar="[PRESET|YAML]", help="Preset name (see `mnemonet presets`) or YAML file; omit with --resume."
        ),
    ] = None,
    overrides: SetOption = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default runs/<name>-<time>).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue the run in this folder.")] = None,
    device: DeviceOption = None,
    threads: ThreadsOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Train a model from a preset or YAML config, or resume a run."""
    from mnemonet.app.run import read_run_config
    from mnemonet.app.run import train as train_run
    from mnemonet.training.config import load_config

    overrides = list(overrides or [])
    if resume is None and config is None:
        raise _fail(ValueError("train: give a preset or YAML file, or --resume RUN"), 2)
    if resume is not None and config is not None:
        raise _fail(ValueError("train: give either a config or --resume RUN, not both (use --set to change it)"), 2)
    if resume is not None:
        cfg = _run_guarded(read_run_config, resume, overrides)
        source = resume.name
    else:
        cfg = _run_guarded(load_config, config, overrides)
        source = Path(config).stem
    result, run = _run_guarded(
        train_run, cfg, out=out, resume=resume, device=device, threads=threads,
        progress="off" if quiet else None, source=source,
    )  # fmt: skip
    from mnemonet.training.distributed import env_info

    if result.reason == "interrupted":
        if env_info().rank == 0:
            typer.echo(f"run {run.path}: stopped at step {result.step}, checkpoint written; continue with "
                       f"mnemonet train --resume {run.path}", err=True)  # fmt: skip
        raise typer.Exit(128 + (result.signal or 15))
    if env_info().rank == 0 and not quiet:
        metric = f"valid_{run.task.primary_metric}"
        value = result.last.get(metric)
        shown = f", {metric} {value:.4g}" if isinstance(value, float) else ""
        typer.echo(f"run {run.path}: step {result.step} ({result.reason}){shown}")


# ----------------------------------------------------------------------------------------------
# eval
# ----------------------------------------------------------------------------------------------


@app.command("eval")
def eval_(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder.")],
    overrides: SetOption = None,
    split: Annotated[str, typer.Option(help="valid or test.")] = "test",
    checkpoint: CheckpointOption = "best",
    batches: Annotated[
        int | None, typer.Option(min=1, help="Batches to average (default trainer.eval_batches).")
    ] = None,
    device: DeviceOption = None,
) -> None:
    """Evaluate a trained run on held-out seeded batches; writes eval_<split>.json in the run folder."""
    from rich.table import Table

    from mnemonet.app.run import evaluate_run, load_run
    from mnemonet.training.checkpoint import atomic_write_text
    from mnemonet.training.device import choose_device

    if split not in ("valid", "test", "train"):
        raise _fail(ValueError(f"--split: expected 'valid', 'test' or 'train', got {split!r}"), 2)
    dev = _run_guarded(choose_device, device or "auto")
    loaded = _run_guarded(load_run, run, checkpoint, list(overrides or []), dev)
    metrics = _run_guarded(evaluate_run, loaded, split, batches, None, dev)
    table = Table(title=f"{run} @ step {loaded.step} ({split})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}")
    _console().print(table)
    record = {"step": loaded.step, "split": split, "checkpoint": checkpoint, "overrides": list(overrides or []),
              **metrics}  # fmt: skip
    atomic_write_text(run / f"eval_{split}.json", json.dumps(record, indent=1) + "\n")


# ----------------------------------------------------------------------------------------------
# analyze, report
# ----------------------------------------------------------------------------------------------


def _require_run(run: Path) -> None:
    """Exit 2 with one ``error:`` line unless ``run`` is a run folder (it holds ``config.yaml``)."""
    if not run.is_dir():
        raise _fail(ValueError(f"RUN {run}: no such folder"), 2)
    if not (run / "config.yaml").is_file():
        hint = "give a folder made by `mnemonet train`"
        raise _fail(ValueError(f"RUN {run}: not a run folder (no config.yaml); {hint}"), 2)


@app.command()
def analyze(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder.")],
    checkpoint: CheckpointOption = "best",
    delays: Annotated[
        str | None, typer.Option(help="Delays for accuracy vs delay, e.g. 5,10,20,40 (default: from the run).")
    ] = None,
    trials: Annotated[int, typer.Option(min=1, help="Test trials for the trajectories and per delay.")] = 512,
    seed: Annotated[int, typer.Option(help="Seed of the test batches and slow-point searches.")] = 0,
    slow_point_steps: Annotated[
        int, typer.Option(min=1, help="Optimisation steps of each slow-point search (more: slower, more converged).")
    ] = 5000,
    device: Annotated[str | None, typer.Option("--device", help="cpu (default), cuda or cuda:N.")] = None,
    threads: ThreadsOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    over_training: Annotated[
        bool, typer.Option("--over-training", help="Instead: each class's slow point over the kept checkpoints.")
    ] = False,
) -> None:
    """Analyse a trained run: figures, slow points and a self-contained report.html.

    Writes RUN/analysis/ (PNG figures, slow_points.npz, summary.json) and RUN/report.html: training
    curves, hidden-state PCA, and for delayed recall accuracy vs delay, slow points and slow-point speed
    vs per-class accuracy; module rasters (RIMs/BRIMs) and memory maps (DNC) where the model has them.
    With --over-training: each class's slow point and accuracy at every kept checkpoint (the paper's Fig. 5),
    in analysis/over_training.{json,png} and a report section.
    """
    from mnemonet.app.run_analysis import analyze_over_training, analyze_run, parse_delays
    from mnemonet.training.device import choose_device, num_threads

    _require_run(run)
    if over_training:
        dev = _run_guarded(choose_device, device or "cpu")
        with num_threads(threads):
            path = _run_guarded(analyze_over_training, run, None, min(trials, 300), seed, device=dev)
        typer.echo(f"report: {path}")
        return
    chosen = _run_guarded(parse_delays, delays) if delays is not None else None
    dev = _run_guarded(choose_device, device or "cpu")
    with num_threads(threads):
        path = _run_guarded(analyze_run, run, checkpoint, chosen, trials, seed, device=dev, progress=False if quiet
                            else None, finder_kwargs={"max_steps": slow_point_steps})  # fmt: skip
    typer.echo(f"report: {path}")


@app.command()
def report(run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder.")]) -> None:
    """Rebuild RUN/report.html from RUN/analysis/ and the current training curves."""
    from mnemonet.analysis.report import load_sections, rebuild_report

    _require_run(run)
    path = _run_guarded(rebuild_report, run)
    typer.echo(f"report: {path}")
    if not load_sections(run):
        typer.echo(f"(training curves only: run `mnemonet analyze {run}` for the full analysis)")


# ----------------------------------------------------------------------------------------------
# sample
# ----------------------------------------------------------------------------------------------


@app.command()
def sample(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder of a character language model.")],
    temperature: Annotated[float, typer.Option(min=0.0, help="Softmax temperature (0 = greedy).")] = 1.0,
    length: Annotated[int, typer.Option(min=0, help="Characters to generate.")] = 200,
    prime: Annotated[str, typer.Option(help="Text to start from.")] = "The ",
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    checkpoint: CheckpointOption = "best",
) -> None:
    """Generate text from a trained character-level language model."""
    import torch

    from mnemonet.app.run import load_run

    loaded = _run_guarded(load_run, run, checkpoint)
    if not hasattr(loaded.task, "sample_text"):
        raise _fail(ValueError(f"sample: run {run} trained task {loaded.config.task.name!r}, not a text task"), 2)
    gen = torch.Generator().manual_seed(seed)
    text = _run_guarded(loaded.task.sample_text, loaded.model, prime, length, temperature, gen)
    typer.echo(prime + text)


# ----------------------------------------------------------------------------------------------
# summary
# ----------------------------------------------------------------------------------------------


@app.command()
def summary(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="Model name (e.g. lstm), preset, YAML file or run folder.")
    ],
    overrides: SetOption = None,
    input_size: Annotated[int, typer.Option(min=1, help="Input size for a bare model name.")] = 8,
    seq_len: Annotated[int, typer.Option(min=1, help="Sequence length of the dummy input.")] = 10,
) -> None:
    """Print a Keras-style table of a model's layers, output shapes and parameters.

    With a model name, --set gives its keywords (``--set hidden_size=64``); with a preset, YAML or run,
    --set overrides the config (``--set model.hidden_size=64``) and sizes come from the task.
    """
    from mnemonet.app.run import build_model, build_task, read_run_config
    from mnemonet.models.registry import available, build
    from mnemonet.models.summary import summary as model_summary
    from mnemonet.training.config import ConfigError, load_config, parse_override

    overrides = list(overrides or [])
    if model in available():
        kwargs = {}
        for text in overrides:
            path, value = _run_guarded(parse_override, text)
            key = path[-1] if len(path) == 1 or path[0] == "model" else None
            if key is None or len(path) > 2:
                raise _fail(ConfigError(f"{text.split('=')[0]}: with a model name, --set takes the model's "
                                        "keywords (e.g. hidden_size=64)"), 2)  # fmt: skip
            kwargs[key] = value
        size = kwargs.setdefault("input_size", input_size)
        filled = _summary_defaults(model, kwargs, seq_len)
        net = _run_guarded(build, model, **kwargs)
        if filled:
            typer.echo(f"({model} with {', '.join(f'{k}={v}' for k, v in filled.items())}; change them with --set)")
    else:
        if Path(model).is_dir():
            cfg = _run_guarded(read_run_config, model, overrides)
        else:
            cfg = _run_guarded(load_config, model, overrides)
        task = _run_guarded(build_task, cfg)
        net = _run_guarded(build_model, cfg, task)
        size = task.input_size
    typer.echo(str(_run_guarded(model_summary, net, (1, seq_len, size))))


# sizes a bare model name is summarised with when --set does not give them (required ones and hidden_size)
SUMMARY_SIZES = {"hidden_size": 32, "memory_size": 16, "word_size": 8, "num_reads": 2, "num_writes": 1,
                 "num_modules": 4, "module_size": 16, "k": 2}  # fmt: skip


def _summary_defaults(name: str, kwargs: dict, seq_len: int) -> dict:
    """Fill in, in place, the sizes ``name`` needs that ``kwargs`` lacks; returns what was filled in."""
    import inspect

    from mnemonet.models import registry

    if name not in registry.available():
        return {}
    params = inspect.signature(registry._REGISTRY[name]).parameters
    required = [
        n for n, p in params.items() if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    extra = {"output_size": kwargs["input_size"], "max_length": seq_len}
    filled = {}
    for key in params:
        if key in kwargs or not (key in required or key == "hidden_size"):
            continue
        value = SUMMARY_SIZES.get(key, extra.get(key))
        if value is not None:
            kwargs[key] = filled[key] = value
    return filled


# ----------------------------------------------------------------------------------------------
# presets, demo
# ----------------------------------------------------------------------------------------------


@app.command("config")
def config_(
    config: Annotated[str, typer.Argument(metavar="PRESET|YAML|RUN", help="Preset, YAML file or run folder.")],
    overrides: SetOption = None,
) -> None:
    """Print the resolved config (extends and --set applied, every default filled in) as YAML.

    The output is what `mnemonet train` would write to the run's config.yaml, and can be saved and trained
    as it is: ``mnemonet config copy_lstm-small --set trainer.lr=3e-3 > my.yaml; mnemonet train my.yaml``.
    """
    from mnemonet.app.run import read_run_config
    from mnemonet.training.config import load_config

    if Path(config).is_dir():
        cfg = _run_guarded(read_run_config, config, list(overrides or []))
    else:
        cfg = _run_guarded(load_config, config, list(overrides or []))
    typer.echo(cfg.to_yaml(), nl=False)


@app.command()
def presets() -> None:
    """List the presets shipped with mnemonet, with their descriptions."""
    from rich.table import Table

    from mnemonet.training.config import list_presets

    table = Table(title="mnemonet presets (use: mnemonet train NAME)")
    table.add_column("preset", no_wrap=True)
    table.add_column("description")
    for name, desc in list_presets().items():
        table.add_row(name, desc)
    _console().print(table)


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default runs/demo-<time>).")] = None,
    threads: ThreadsOption = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Training steps (default: the preset's).")] = None,
    device: DeviceOption = None,
    trials: Annotated[int, typer.Option(min=1, help="Test trials per delay.")] = 1000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no table.")] = False,
    analyze_run: Annotated[
        bool, typer.Option("--analyze/--no-analyze", help="End by analysing the run and writing report.html.")
    ] = True,
) -> None:
    """Train a GRU on delayed recall of digits with the delay curriculum, test accuracy vs delay, analyse it."""
    from mnemonet.app.demo import run_demo

    _run_guarded(run_demo, out=out, threads=threads, steps=steps, device=device, quiet=quiet, trials=trials,
                 analyze=analyze_run)  # fmt: skip


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main() -> None:
    """Entry point of the ``mnemonet`` script and ``python -m mnemonet``; warnings print as one ``warning:`` line."""
    import warnings

    warnings.formatwarning = _one_line_warning
    app(prog_name="mnemonet")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
