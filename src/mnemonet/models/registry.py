"""Build any model by name: ``mnemonet.build("lstm", input_size=8, hidden_size=64)``.

The same names appear in YAML presets and on the command line. A model module registers its
factory with ``@register("name")``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from mnemonet._checks import did_you_mean

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: make ``factory`` buildable as ``build(name, **kwargs)``."""

    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"name: model {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def available() -> list[str]:
    """Names accepted by :func:`build`."""
    return sorted(_REGISTRY)


def parameters(name: str) -> list[str]:
    """The keyword arguments the factory of ``name`` accepts (empty for an unknown name)."""
    factory = _REGISTRY.get(name)
    return list(inspect.signature(factory).parameters) if factory else []


def build(name: str, **kwargs: Any) -> nn.Module:
    """Build a model by its registered name.

    Args:
        name: one of :func:`available` (``"rnn"``, ``"lstm"``, ``"gru"``, ...).
        **kwargs: the factory's keyword arguments (sizes, options), plus, for every model, ``encoder``
            (``"none"``, ``"linear"``, ``"embedding"`` or ``"levels"``), ``encoder_size``, ``num_embeddings`` and
            ``encoder_dropout``: the model then reads ``encoder(x)`` (:mod:`mnemonet.models.encoder`).

    Raises:
        ValueError: unknown name or unknown keyword, with the closest valid spelling; missing required
            arguments, by name.
    """
    own = name in _REGISTRY and "encoder" in inspect.signature(_REGISTRY[name]).parameters  # e.g. frame models
    encoder = "none" if own else kwargs.pop("encoder", "none")
    encoder_size = None if own else kwargs.pop("encoder_size", None)
    num_embeddings = None if own else kwargs.pop("num_embeddings", None)
    encoder_dropout = 0.0 if own else kwargs.pop("encoder_dropout", 0.0)
    if name not in _REGISTRY:
        hint = did_you_mean(name, _REGISTRY)
        raise ValueError(f"name: unknown model {name!r}{hint} (available: {', '.join(available())})")
    factory = _REGISTRY[name]
    params = inspect.signature(factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for key in kwargs:
            if key not in params:
                hint = did_you_mean(key, params)
                raise ValueError(f"{key}: not an argument of model {name!r}{hint} (expected one of {list(params)})")
    missing = [n for n, p in params.items() if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    missing = [n for n in missing if n not in kwargs]
    if missing:
        raise ValueError(f"{', '.join(missing)}: required by model {name!r} but not given")
    if encoder == "none":
        return factory(**kwargs)
    from mnemonet.models.encoder import encoded

    return encoded(factory, encoder, encoder_size=encoder_size, num_embeddings=num_embeddings,
                   encoder_dropout=encoder_dropout, **kwargs)  # fmt: skip
