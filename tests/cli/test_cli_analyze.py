"""``mnemonet analyze`` and ``mnemonet report`` end to end on a tiny delayed-recall run, and their errors."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mnemonet.analysis.slow_points import SlowPoints
from mnemonet.cli import app

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"

TINY = {
    "description": "tiny delayed recall for the analyze tests",
    "model": {"name": "gru", "hidden_size": 6},
    "task": {"name": "delayed_recall", "t_max": 7, "min_gap": 2},
    "trainer": {"steps": 10, "batch_size": 8, "eval_every": 5, "eval_batches": 1, "checkpoint_every": 5,
                "tensorboard": False, "threads": 1, "device": "cpu", "lr": 1e-2},
}  # fmt: skip


def invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli_analyze")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    result = invoke("train", folder / "tiny.yaml", "--out", folder / "run", "-q")
    assert result.exit_code == 0, result.output
    return folder / "run"


def _images_and_headings(html: str) -> tuple[list[bytes], list[str]]:
    srcs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    return [base64.b64decode(s, validate=True) for s in srcs], re.findall(r"<h2>(.*?)</h2>", html)


def test_help_lists_analyze_and_report():
    output = invoke("--help").output
    assert "analyze" in output and "report" in output
    options = invoke("analyze", "--help").output
    for option in ("--checkpoint", "--delays", "--trials", "--slow-point-steps"):
        assert option in options


def test_analyze_then_report(run, monkeypatch):
    monkeypatch.chdir(run.parent)  # a relative RUN, as typed in a shell
    args = ("--delays", "2,4,9", "--trials", "32", "--slow-point-steps", "100", "--threads", 1)
    result = invoke("analyze", run.name, *args)
    assert result.exit_code == 0, result.output
    report = (run / "report.html").resolve()
    assert result.output.strip().splitlines()[-1] == f"report: {report}"
    assert "\x1b[" not in result.output  # no progress display when not on a terminal
    images, headings = _images_and_headings(report.read_text())
    assert images and all(img.startswith(PNG) for img in images)
    assert "Accuracy vs delay" in headings and "Slow points" in headings
    assert len(SlowPoints.load(run / "analysis" / "slow_points.npz")) >= 1
    summary = json.loads((run / "analysis" / "summary.json").read_text())
    assert set(summary["accuracy_vs_delay"]) == {"2", "4", "9"} and summary["trials"] == 32

    report.unlink()
    result = invoke("report", run.name)
    assert result.exit_code == 0, result.output
    assert f"report: {report}" in result.output
    assert _images_and_headings(report.read_text())[1] == headings


def test_report_without_analysis_has_training_curves_and_says_so(tmp_path, run):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.yaml", "metrics.jsonl"):
        (bare / name).write_bytes((run / name).read_bytes())
    result = invoke("report", bare)
    assert result.exit_code == 0, result.output
    assert f"mnemonet analyze {bare}" in result.output
    assert _images_and_headings((bare / "report.html").read_text())[1] == ["Training curves"]


def test_errors_exit_2_with_one_line(tmp_path, run):
    for command in ("analyze", "report"):
        result = invoke(command, tmp_path)
        assert result.exit_code == 2
        assert result.output.startswith("error: ") and "not a run folder (no config.yaml)" in result.output
        result = invoke(command, tmp_path / "missing")
        assert result.exit_code == 2 and "no such folder" in result.output
    result = invoke("analyze", run, "--delays", "5,ten")
    assert result.exit_code == 2 and "--delays: expected comma-separated integers" in result.output
    assert not (tmp_path / "analysis").exists()  # nothing written into a folder that is not a run
