"""The package's layers (docs/design.md): every import points down a layer or stays inside one, and no cycles.

Walks ``src/mnemonet`` with :mod:`ast` (imports inside functions count too), so a lazy import cannot hide
an upward dependency. Top to bottom: cli > app > training > analysis > tasks > models > kernels, with
reference, _checks, errors and files at the bottom.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "mnemonet"

# rank of each top-level part of the package; an import may only go to an equal or lower rank
LAYERS = {
    "__init__": 8, "__main__": 8, "cli": 8,
    "app": 7,
    "training": 6,
    "analysis": 5,
    "tasks": 4,
    "models": 3,
    "kernels": 2,
    "reference": 0, "_checks": 0, "errors": 0, "files": 0,
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The ``mnemonet`` modules that ``name`` imports (a ``from pkg import sub`` counts as ``pkg.sub``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import mnemonet.x.y` names a module or a package
                target = target.rpartition(".")[0]
            if target.startswith("mnemonet") and target != name:
                found.add(target)
    return found


def layer(name: str) -> str:
    parts = name.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_every_part_of_the_package_has_a_layer():
    unknown = sorted({layer(name) for name in all_modules()} - set(LAYERS))
    assert not unknown, f"give these parts of mnemonet a layer in LAYERS (and in docs/design.md): {unknown}"


def test_imports_point_down():
    upward = [
        f"{name} ({layer(name)}) imports {target} ({layer(target)})"
        for name, targets in graph().items()
        for target in sorted(targets)
        if LAYERS.get(layer(target), 99) > LAYERS.get(layer(name), -1)
    ]
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None; iterative depth-first search."""
    colour: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in sorted(edges):
        if colour.get(root):
            continue
        path, stack = [root], [iter(sorted(edges[root]))]
        colour[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[path.pop()] = 2
                stack.pop()
            elif colour.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not colour.get(nxt):
                colour[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(edges.get(nxt, ()))))
    return None


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize(
    ("edges", "has_cycle"),
    [({"a": {"b"}, "b": {"c"}, "c": set()}, False), ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
     ({"a": {"a2"}, "a2": set(), "b": {"a", "b2"}, "b2": {"b"}}, True)],
)  # fmt: skip
def test_cycle_finder_on_known_graphs(edges, has_cycle):
    assert (find_cycle(edges) is not None) == has_cycle


def test_walker_sees_lazy_and_relative_imports(tmp_path):
    modules = {"mnemonet.models": Path(), "mnemonet.models.cells": Path(), "mnemonet.training.trainer": Path()}
    src = tmp_path / "cells.py"
    src.write_text("def f():\n    from mnemonet.training.trainer import Trainer\nfrom . import cells\n")
    assert imports_of("mnemonet.models.x", src, modules) == {"mnemonet.training.trainer", "mnemonet.models.cells"}
