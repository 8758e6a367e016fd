"""Typed run configuration: dataclasses read from YAML presets, with ``--set a.b=c`` overrides.

A run is described by one :class:`RunConfig`. Its typed sections (``trainer``, and the early
stopping block inside it) reject unknown keys with the closest valid spelling and wrong types with
the key and the expected type. The ``model``, ``task``, ``curriculum`` and ``regularizer`` sections
hold a ``name`` plus free-form keyword arguments, written flat in YAML::

    model:
      name: gru
      hidden_size: 100

whose keywords are checked by the factory they go to (``mnemonet.build`` names a bad keyword).
Values given on the command line are parsed with ``yaml.safe_load``: ``--set trainer.lr=1e-3``,
``--set task.delays=[5,10]``, ``--set trainer.clip_norm=null``.

The presets shipped in ``mnemonet/configs/`` live here too (:func:`preset_paths`, :func:`list_presets`,
:func:`resolve`): every ``*.yaml`` there is a preset named by its file stem, whose ``description:`` is the
line ``mnemonet presets`` prints, and which may start from another with ``extends: NAME``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mnemonet._checks import did_you_mean
from mnemonet.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd", "adagrad")
SCHEDULES = ("constant", "cosine", "step", "exponential", "linear")
PROGRESS_MODES = ("auto", "bar", "lines", "off")
MAX_LR = 1e6  # a learning rate at or above this overflows any update to inf
TOP_LEVEL_KEYS = ("description", "extends", "model", "task", "curriculum", "trainer", "regularizer")


# ----------------------------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------------------------


@dataclass
class NamedConfig:
    """A section that names a factory and passes it free-form keyword arguments."""

    name: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any] | None:
        return {"name": self.name, **self.kwargs}


@dataclass
class ModelConfig(NamedConfig):
    """``name`` for ``mnemonet.build`` and its keywords; input/output sizes come from the task."""

    name: str | None = "gru"


@dataclass
class TaskConfig(NamedConfig):
    """``name`` for ``mnemonet.tasks.make_task`` and its keywords."""

    name: str | None = "delayed_recall"


@dataclass
class CurriculumConfig(NamedConfig):
    """A curriculum's ``name`` (or None for no curriculum) and its keywords."""

    name: str | None = None


@dataclass
class RegularizerConfig(NamedConfig):
    """An extra loss term by name (see :mod:`mnemonet.training.regularizers`), or None; ``weight`` scales it."""

    name: str | None = None


@dataclass
class EarlyStoppingConfig:
    """Stop when the validation ``metric`` has not improved by ``min_delta`` for ``patience`` evaluations.

    ``patience: null`` turns early stopping off; ``metric: null`` means the task's primary metric
    (``"loss"`` is always available, lower is better).
    """

    patience: int | None = None
    metric: str | None = None
    min_delta: float = 0.0


@dataclass
class TrainerConfig:
    """How to train. Steps count training batches; evaluations and checkpoints happen every so many steps.

    Attributes:
        steps: training batches in all (a skipped non-finite step counts).
        batch_size: sequences per batch (per process under torchrun).
        optimizer: ``adam``, ``adamw``, ``rmsprop``, ``sgd`` or ``adagrad``.
        lr, momentum, weight_decay, eps: optimiser settings (momentum for rmsprop and sgd).
        rms_alpha: RMSProp's smoothing constant of the squared-gradient average.
        clip_norm: clip the global gradient norm to this (null: no clipping).
        schedule: ``constant``, ``cosine``, ``step``, ``exponential`` or ``linear``, after
            ``warmup_steps`` of linear warm-up; ``lr_decay``, ``decay_every`` and ``min_lr`` shape it
            (see :func:`mnemonet.training.optim.lr_at`).
        eval_every, eval_batches, eval_batch_size: evaluation cadence and size (held-out, seeded).
        early_stopping: see :class:`EarlyStoppingConfig`.
        seed: seeds model initialisation, training batches (seed + rank) and evaluation batches.
        threads: CPU intra-op threads (null: ``mnemonet.training.device.DEFAULT_THREADS``).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        checkpoint_every, keep_checkpoints: checkpoint cadence and how many step checkpoints to keep.
        log_every: TensorBoard training scalars every so many steps.
        max_bad_steps: non-finite steps in a row that stop training.
        tensorboard: write TensorBoard events.
        progress: ``auto``, ``bar``, ``lines`` or ``off`` (see :mod:`mnemonet.training.progress`).
        find_unused_parameters: passed to DistributedDataParallel (models with unused parameters).
        recompute_statistics: before each held-out evaluation, re-estimate the population statistics of
            batch-normalised recurrent cells (BN-LSTM) over this many training batches, as Cooijmans et al.
            evaluate; 0 = use the running averages kept during training.
        checkpoint_minutes: also write a checkpoint whenever this many minutes have passed since the last
            one (null: only every ``checkpoint_every`` steps); for preemptible machines.
        initial_state_noise: standard deviation of Gaussian noise added to every floating-point tensor of
            the initial state of each training sequence (0: none). Cooijmans et al. (2017, section 5.1) add
            it on sequential MNIST: with h0 = 0 and the first ~100 pixels equal across the batch, every
            batch norm of the first steps sees zero variance and gradients explode. Evaluation starts from
            the plain initial state.
        init_from: a run folder (its best checkpoint, else its newest) or a checkpoint ``.json`` whose model
            weights start this run (weights only: fresh optimiser, step 0), e.g. to fine-tune with a
            regulariser; the model section must build the same shapes.
    """

    steps: int = 1000
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    rms_alpha: float = 0.99
    eps: float = 1e-8
    clip_norm: float | None = 1.0
    schedule: str = "constant"
    warmup_steps: int = 0
    lr_decay: float = 0.5
    decay_every: int = 1000
    min_lr: float = 0.0
    eval_every: int = 100
    eval_batches: int = 4
    eval_batch_size: int | None = None
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    max_bad_steps: int = 5
    tensorboard: bool = True
    progress: str = "auto"
    find_unused_parameters: bool = False
    recompute_statistics: int = 0
    checkpoint_minutes: float | None = None
    initial_state_noise: float = 0.0
    init_from: str | None = None


@dataclass
class RunConfig:
    """Everything that defines a run; ``config.yaml`` in a run folder is this, resolved."""

    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict as written to ``config.yaml`` (free-form sections flat)."""
        out: dict[str, Any] = {"description": self.description}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, NamedConfig):
                out[f.name] = value.to_dict()
            elif dataclasses.is_dataclass(value):
                out[f.name] = dataclasses.asdict(value)
        return out

    def to_yaml(self) -> str:
        """The config as YAML text (``load_config`` of it gives back an equal config)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


# ----------------------------------------------------------------------------------------------
# dict -> dataclass, with type checks
# ----------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return getattr(origin, "__name__", str(origin))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` as type ``tp``, or a ConfigError naming ``key`` and the expected type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin in (dict,) or tp is dict:
        if isinstance(value, dict):
            return dict(value)
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return _from_dict(tp, value, key)
    else:  # pragma: no cover - a field type this module does not handle
        raise TypeError(f"{key}: unsupported config field type {tp!r}")
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _from_dict(cls: type, data: dict[str, Any], prefix: str) -> Any:
    """Build dataclass ``cls`` from ``data``; keys are reported as ``prefix.key``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a mapping, got {data!r}")
    if issubclass(cls, NamedConfig):
        data = dict(data)
        name = data.pop("name", cls.name)
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"{prefix}.name: expected str or null, got {name!r}")
        bad = [k for k in data if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"{prefix}: keys must be strings, got {bad[0]!r}")
        return cls(name=name, kwargs=data)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"{full}: unknown key{did_you_mean(str(key), names)} (valid keys: {', '.join(names)})")
        kwargs[key] = _coerce(value, hints[key], full)
    return cls(**kwargs)


# ----------------------------------------------------------------------------------------------
# overrides
# ----------------------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"trainer.lr=1e-3"`` -> ``(["trainer", "lr"], 0.001)``; the value is read with ``yaml.safe_load``."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. trainer.lr=1e-3")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError(f"--set {text!r}: expected a dotted key such as trainer.lr, got {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"{key}: cannot read value {raw!r} ({err.__class__.__name__})") from None
    return path, value


def apply_overrides(data: dict[str, Any], overrides: typing.Sequence[str]) -> dict[str, Any]:
    """A copy of the raw config dict ``data`` with each ``KEY=VALUE`` override applied.

    Unknown top-level sections and unknown keys of typed sections raise a ConfigError naming the key
    with the closest valid one; values are type-checked later by :func:`config_from_dict`.
    """
    data = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        if path[0] not in TOP_LEVEL_KEYS or path[0] == "extends":
            valid = [k for k in TOP_LEVEL_KEYS if k != "extends"]
            raise ConfigError(f"{path[0]}: unknown section{did_you_mean(path[0], valid)} (valid: {', '.join(valid)})")
        node = data
        cls: Any = RunConfig
        for depth, part in enumerate(path[:-1]):
            full = ".".join(path[: depth + 1])
            if cls is not None:
                hints = typing.get_type_hints(cls)
                if part not in hints:
                    raise ConfigError(f"{full}: unknown key{did_you_mean(part, hints)}")
                sub = hints[part]
                cls = sub if dataclasses.is_dataclass(sub) and not issubclass(sub, NamedConfig) else None
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{full}: is a value ({child!r}), not a section")
            node = child
        last = path[-1]
        if cls is not None:
            hints = typing.get_type_hints(cls)
            if last not in hints:
                full = ".".join(path)
                raise ConfigError(f"{full}: unknown key{did_you_mean(last, hints)} (valid keys: {', '.join(hints)})")
        if cls is not None and isinstance(value, bool) and "bool" not in _type_name(typing.get_type_hints(cls)[last]):
            value = text.split("=", 1)[1].strip()  # YAML 1.1 reads off/on/yes/no as booleans; keep the word
        node[last] = value
    return data


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------


def _check_choice(value: Any, key: str, choices: typing.Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: expected one of {list(choices)}, got {value!r}{did_you_mean(str(value), choices)}")


def _check_range(value: Any, key: str, low: float | None = None, high: float | None = None, *, open_low=False,
                 open_high=False) -> None:  # fmt: skip
    below = low is not None and (value <= low if open_low else value < low)
    above = high is not None and (value >= high if open_high else value > high)
    if below or above:
        lo = "(-inf" if low is None else ("(" if open_low else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if open_high else "]")
        raise ConfigError(f"{key}: expected a value in {lo}, {hi}, got {value!r}")


def _check_finite(config: RunConfig) -> None:
    """Every float of the trainer section is finite and the learning rates are below 1e6 (nothing trains above)."""
    t = config.trainer
    for f in dataclasses.fields(t):
        value = getattr(t, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"trainer.{f.name}: expected a finite number, got {value!r}")
    for key in ("lr", "min_lr"):
        if getattr(t, key) >= MAX_LR:
            raise ConfigError(f"trainer.{key}: {getattr(t, key):g} is far too large to train with; use a value "
                              f"below {MAX_LR:g} (typical: 1e-4 to 1e-2)")  # fmt: skip


def validate(config: RunConfig) -> RunConfig:
    """Check value ranges and choices; raise a ConfigError naming the first bad key."""
    t = config.trainer
    for key in ("steps", "batch_size", "eval_every", "eval_batches", "checkpoint_every", "log_every",
                "max_bad_steps", "decay_every"):  # fmt: skip
        _check_range(getattr(t, key), f"trainer.{key}", 1)
    for key in ("warmup_steps", "seed", "recompute_statistics"):
        _check_range(getattr(t, key), f"trainer.{key}", 0)
    _check_range(t.keep_checkpoints, "trainer.keep_checkpoints", 1)
    if t.eval_batch_size is not None:
        _check_range(t.eval_batch_size, "trainer.eval_batch_size", 1)
    if t.threads is not None:
        _check_range(t.threads, "trainer.threads", 1)
    _check_choice(t.optimizer, "trainer.optimizer", OPTIMIZERS)
    _check_choice(t.schedule, "trainer.schedule", SCHEDULES)
    _check_choice(t.progress, "trainer.progress", PROGRESS_MODES)
    _check_range(t.lr, "trainer.lr", 0, open_low=True)
    _check_range(t.min_lr, "trainer.min_lr", 0)
    _check_range(t.momentum, "trainer.momentum", 0, 1, open_high=True)
    _check_range(t.weight_decay, "trainer.weight_decay", 0)
    _check_range(t.rms_alpha, "trainer.rms_alpha", 0, 1, open_low=True, open_high=True)
    _check_range(t.eps, "trainer.eps", 0, open_low=True)
    _check_range(t.lr_decay, "trainer.lr_decay", 0, 1, open_low=True)
    if t.clip_norm is not None:
        _check_range(t.clip_norm, "trainer.clip_norm", 0, open_low=True)
    if t.checkpoint_minutes is not None:
        _check_range(t.checkpoint_minutes, "trainer.checkpoint_minutes", 0, open_low=True)
    _check_range(t.initial_state_noise, "trainer.initial_state_noise", 0)
    _check_finite(config)
    es = t.early_stopping
    if es.patience is not None:
        _check_range(es.patience, "trainer.early_stopping.patience", 1)
    _check_range(es.min_delta, "trainer.early_stopping.min_delta", 0)
    if not (t.device == "auto" or t.device.split(":")[0] in ("cpu", "cuda", "mps")):
        raise ConfigError(f"trainer.device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {t.device!r}")
    if config.model.name is None:
        raise ConfigError("model.name: expected a model name such as 'gru', got null")
    if config.task.name is None:
        raise ConfigError("task.name: expected a task name such as 'delayed_recall', got null")
    if "init_from" in config.model.kwargs:
        raise ConfigError("model.init_from: renamed to trainer.init_from; write --set trainer.init_from=RUN")
    for bad in ("input_size", "output_size"):
        if bad in config.model.kwargs:
            raise ConfigError(f"model.{bad}: set by the task automatically; remove it from the config")
    return config


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """A validated :class:`RunConfig` from a raw nested dict (``extends`` already resolved)."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(data).__name__}")
    data = {k: v for k, v in data.items() if k != "extends"}
    for section in ("model", "task", "curriculum", "regularizer"):
        if section in data and data[section] is None:
            data[section] = {"name": None}
    if data.get("description") is None:
        data["description"] = ""
    return validate(_from_dict(RunConfig, data, ""))


# ----------------------------------------------------------------------------------------------
# presets: the YAML files shipped in mnemonet/configs/
# ----------------------------------------------------------------------------------------------

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"


def preset_paths() -> dict[str, Path]:
    """Preset name -> YAML path, for every ``*.yaml`` in the package's ``configs/`` folder.

    A preset is named by its file stem; its ``description:`` key is the one-line summary
    ``mnemonet presets`` prints. A preset may start from another with ``extends: NAME``.
    """
    if not PRESET_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.yaml"))}


def list_presets() -> dict[str, str]:
    """Preset name -> its one-line ``description`` (empty when the file has none or does not parse)."""
    out = {}
    for name, path in preset_paths().items():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            data = {}
        desc = data.get("description", "") if isinstance(data, dict) else ""
        out[name] = " ".join(str(desc or "").split())
    return out


def resolve(source: str | Path) -> Path:
    """The YAML file behind a preset name or a path.

    Raises:
        ConfigError: neither a file nor a preset, naming the closest preset.
    """
    path = Path(source)
    if path.is_file():
        return path
    presets = preset_paths()
    name = str(source)
    if name in presets:
        return presets[name]
    if name.endswith((".yaml", ".yml")) or "/" in name:
        raise ConfigError(f"config: no such file {name!r}")
    hint = did_you_mean(name, presets)
    raise ConfigError(f"config: {name!r} is neither a YAML file nor a preset{hint} (see `mnemonet presets`)")


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``top`` wins; a section whose ``name`` changes replaces the base section."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and value.get("name", old.get("name")) == old.get("name"):
            out[key] = _merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read one YAML config file as a dict (an empty file is an empty dict)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_raw(source: str | Path, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The raw dict of a preset name or YAML path, with ``extends: OTHER`` merged in (OTHER first)."""
    path = resolve(source)
    if str(path) in _seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle ({' -> '.join(_seen)})")
    data = read_yaml(path)
    parent = data.get("extends")
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends: expected a preset name or YAML path, got {parent!r}")
    if not Path(parent).is_absolute() and (path.parent / parent).is_file():
        parent = str(path.parent / parent)
    base = load_raw(parent, (*_seen, str(path)))
    return _merge(base, {k: v for k, v in data.items() if k != "extends"})


def load_config(source: str | Path | dict[str, Any], overrides: typing.Sequence[str] = ()) -> RunConfig:
    """Load a preset name, a YAML path or a raw dict, apply ``KEY=VALUE`` overrides, validate.

    Example:
        >>> cfg = load_config({"model": {"name": "gru", "hidden_size": 8}}, ["trainer.lr=1e-2"])
        >>> cfg.trainer.lr, cfg.model.kwargs
        (0.01, {'hidden_size': 8})
    """
    raw = copy.deepcopy(source) if isinstance(source, dict) else load_raw(source)
    return config_from_dict(apply_overrides(raw, overrides))


__all__ = [
    "OPTIMIZERS", "SCHEDULES", "ConfigError", "CurriculumConfig", "EarlyStoppingConfig", "ModelConfig",
    "NamedConfig", "RegularizerConfig", "RunConfig", "TaskConfig", "TrainerConfig", "apply_overrides",
    "config_from_dict", "list_presets", "load_config", "load_raw", "parse_override", "preset_paths", "read_yaml",
    "resolve", "validate",
]  # fmt: skip
