"""The YAML presets shipped in ``mnemonet/configs/``: discover them, describe them, resolve a name to a file.

Every ``*.yaml`` in that folder is a preset named by its file stem; its ``description:`` key is the
one-line summary ``mnemonet presets`` prints. A preset may start from another with ``extends: NAME``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mnemonet._checks import did_you_mean
from mnemonet.training.config import ConfigError

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs"


def preset_paths() -> dict[str, Path]:
    """Preset name -> YAML path, for every ``*.yaml`` in the package's ``configs/`` folder."""
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


__all__ = ["PRESET_DIR", "list_presets", "preset_paths", "resolve"]
