"""mnemonet.reference must never import torch, directly or through another mnemonet module."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import mnemonet.reference

PACKAGE = Path(mnemonet.reference.__file__).parent


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def test_sources_import_no_torch() -> None:
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) >= 10
    for path in files:
        for name in imported_modules(path):
            root = name.split(".")[0]
            assert root != "torch", f"{path.name} imports {name}"
            # other mnemonet modules may import torch: only the reference itself is allowed
            assert root != "mnemonet" or name.startswith("mnemonet.reference"), f"{path.name} imports {name}"
            assert not name.startswith(".."), f"{path.name} imports {name}"
        text = path.read_text()
        # no dynamic import that the AST scan above would miss
        assert not re.search(r"^\s*(import|from)\s+torch\b", text, flags=re.MULTILINE), path.name
        assert "__import__" not in text and "importlib" not in text, path.name


def test_importing_the_package_loads_no_torch() -> None:
    """In a fresh interpreter where torch cannot be imported, the whole package imports and runs.

    The parent ``mnemonet/__init__`` (which imports torch) is bypassed with an empty package module
    pointing at the same folder, so only the reference's own imports are exercised.
    """
    code = f"""
import sys, types
sys.modules["torch"] = None  # any `import torch` now raises ImportError
parent = types.ModuleType("mnemonet")
parent.__path__ = [{str(PACKAGE.parent)!r}]
sys.modules["mnemonet"] = parent
import numpy as np
import mnemonet.reference as ref
import mnemonet.reference.train, mnemonet.reference.gradcheck
m = ref.SequenceModel("lstm", 2, 3, 2, rng=0)
m.loss_and_grads(np.ones((1, 2, 2)), np.zeros((1, 2), dtype=int))
loaded = sorted(k for k in sys.modules if k.startswith("mnemonet") or k.split(".")[0] == "torch")
print(loaded)
assert sys.modules["torch"] is None
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "mnemonet.reference.lstm" in out.stdout
    assert "'torch." not in out.stdout
