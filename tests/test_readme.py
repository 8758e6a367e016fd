"""The README runs as written: every ``bash`` and ``python`` block, in order, in one scratch folder.

``mnemonet ...`` lines run in this process through the command line's app (the same code as the
installed script, without a new interpreter per line); other lines (``torchrun``) run in a shell with
this environment's ``bin`` first on PATH. ``make demo`` / ``make test`` lines are not run here: ``make
test`` is what CI runs around this very test, and ``make demo`` is ``mnemonet demo`` after setting up
the environment (tests/cli covers the demo); the test checks that the Makefile has both targets. Runs
use one CPU thread here (the default thread count is a property of the machine, not of the README). A
link in the README must point to a file inside the repository.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mnemonet.app import run as run_module
from mnemonet.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks() -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in BLOCK.findall(README.read_text(encoding="utf-8"))]


def commands(body: str) -> list[str]:
    """The logical lines of a shell block (backslash continuations joined, comment-only lines dropped)."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [line for line in joined.splitlines() if shlex.split(line, comments=True)]


def test_readme_has_blocks_of_both_kinds():
    kinds = [lang for lang, _ in blocks()]
    assert kinds.count("bash") >= 3 and kinds.count("python") >= 2
    assert set(kinds) <= {"bash", "python"}, "a block of another language would not be run: use bash or python"


def test_links_stay_inside_the_repository():
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert links
    for link in links:
        assert not link.startswith(("http:", "https:")), link
        target = (ROOT / link).resolve()
        assert target.is_relative_to(ROOT) and target.exists(), link
    assert "../" not in text


@pytest.mark.slow
def test_every_block_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_module, "DEFAULT_THREADS", 1)  # one thread per run: CI machines are shared
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    runner = CliRunner()
    for lang, body in blocks():
        if lang == "python":
            exec(compile(body, str(README), "exec"), {"__name__": "readme"})
            continue
        for line in commands(body):
            words = shlex.split(line, comments=True)
            if words[0] == "make":
                assert re.search(rf"^{words[1]}:", makefile, re.MULTILINE), line
            elif words[0] == "mnemonet":
                result = runner.invoke(app, words[1:])
                assert result.exit_code == 0, f"{line}\n{result.output}\n{result.exception!r}"
            else:
                done = subprocess.run(line, shell=True, env=env, capture_output=True, text=True, timeout=300)
                assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
