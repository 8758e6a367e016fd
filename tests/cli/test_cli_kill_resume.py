"""Kill ``python -m mnemonet train`` with SIGKILL mid-run, resume it, and get the uninterrupted run's metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from mnemonet.cli import app
from mnemonet.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint

TINY = {
    "model": {"name": "gru", "hidden_size": 8},
    "task": {"name": "delayed_recall", "t_max": 7, "min_gap": 2},
    "curriculum": {"name": "decu", "start": 4, "step": 1, "threshold": 0.3},
    "trainer": {"steps": 600, "batch_size": 8, "eval_every": 10, "eval_batches": 1, "checkpoint_every": 10,
                "keep_checkpoints": 2, "tensorboard": False, "threads": 1, "device": "cpu", "optimizer": "rmsprop",
                "momentum": 0.5, "schedule": "cosine", "lr": 0.01},
}  # fmt: skip


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    runner = CliRunner()

    killed = tmp_path / "killed"
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "mnemonet", "train", str(cfg), "--out", str(killed), "--quiet"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list_checkpoints(killed / "checkpoints") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    step = load_checkpoint(latest_checkpoint(killed / "checkpoints"))[1]["step"]
    assert 10 <= step < 600  # killed mid-run, after at least one checkpoint

    result = runner.invoke(app, ["train", "--resume", str(killed), "--quiet"])
    assert result.exit_code == 0, result.output

    full = tmp_path / "full"
    result = runner.invoke(app, ["train", str(cfg), "--out", str(full), "--quiet"])
    assert result.exit_code == 0, result.output

    a = (full / "metrics.jsonl").read_text()
    b = (killed / "metrics.jsonl").read_text()
    assert a.count("\n") == 60
    assert a == b
    ta, sa = load_checkpoint(latest_checkpoint(full / "checkpoints"))
    tb, sb = load_checkpoint(latest_checkpoint(killed / "checkpoints"))
    assert sa["step"] == sb["step"] == 600
    for key in ta:
        if key.startswith("model."):
            assert torch.equal(ta[key], tb[key]), key
