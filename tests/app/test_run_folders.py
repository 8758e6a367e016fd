"""Run folders in real use: exclusive folders, the run lock, stopping by signal, failed resumes, restarts in place."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from mnemonet import files
from mnemonet.app.folders import LOCK_FILE, RunLock, create_run_dir
from mnemonet.cli import app
from mnemonet.errors import RunLockedError
from mnemonet.files import read_metrics
from mnemonet.models import registry
from mnemonet.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from mnemonet.training.trainer import ResumeWarning

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
TINY = {
    "model": {"name": "gru", "hidden_size": 8},
    "task": {"name": "delayed_recall", "t_max": 7, "min_gap": 2},
    "curriculum": {"name": "decu", "start": 4, "step": 1, "threshold": 0.3},
    "trainer": {"steps": 20, "batch_size": 8, "eval_every": 10, "eval_batches": 1, "checkpoint_every": 10,
                "keep_checkpoints": 2, "tensorboard": False, "threads": 1, "device": "cpu", "optimizer": "rmsprop",
                "momentum": 0.5, "schedule": "cosine", "lr": 0.01},
}  # fmt: skip
runner = CliRunner()


def invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def write_config(tmp_path: Path, **trainer) -> Path:
    cfg = {**TINY, "trainer": {**TINY["trainer"], **trainer}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def mnemonet_process(*args: object, cwd: Path | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "mnemonet", *map(str, args)]
    return subprocess.Popen(command, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# ----------------------------------------------------------------------------------------------
# folders and the lock
# ----------------------------------------------------------------------------------------------


def test_run_folders_created_in_the_same_second_are_distinct(tmp_path):
    made: list[Path] = []
    threads = [threading.Thread(target=lambda: made.append(create_run_dir("copy_lstm-small", tmp_path)))
               for _ in range(16)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 16 and all(p.is_dir() and p.name.startswith("copy_lstm-small-") for p in made)


def test_a_second_lock_on_a_run_is_refused_by_pid_until_released(tmp_path):
    pattern = rf"in use by pid {os.getpid()} on .* \(training since"
    with RunLock(tmp_path), pytest.raises(RunLockedError, match=pattern):
        RunLock(tmp_path, "resuming").acquire()
    with RunLock(tmp_path, "resuming") as lock:  # released: free again
        assert lock.held


def test_a_lock_left_by_a_process_killed_with_sigkill_is_stale(tmp_path):
    code = (
        f"from mnemonet.app.folders import RunLock; RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); "
    )
    code += "import time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], env=ENV, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"held"
    with pytest.raises(RunLockedError, match=f"pid {proc.pid} "):
        RunLock(tmp_path).acquire()
    proc.kill()
    proc.communicate(timeout=30)
    assert f"pid {proc.pid} " in (tmp_path / LOCK_FILE).read_text()  # the dead owner's record is still there
    with RunLock(tmp_path) as lock:
        assert lock.held and f"pid {os.getpid()} " in (tmp_path / LOCK_FILE).read_text()


@pytest.mark.slow
def test_two_concurrent_trainings_of_one_preset_get_two_folders_and_both_complete(tmp_path):
    config = write_config(tmp_path)
    procs = [mnemonet_process("train", config, "--set", f"trainer.seed={seed}", "--quiet", cwd=tmp_path)
             for seed in (0, 1)]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2
    seeds = sorted(yaml.safe_load((run / "config.yaml").read_text())["trainer"]["seed"] for run in runs)
    assert seeds == [0, 1]
    for run in runs:
        assert [r["step"] for r in read_metrics(run)] == [10, 20]
        assert load_checkpoint(latest_checkpoint(run / "checkpoints"))[1]["step"] == 20


# ----------------------------------------------------------------------------------------------
# signals
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_checkpoints_and_resume_repeats_the_uninterrupted_run_exactly(tmp_path):
    # no step checkpoint before the end: the only one in the middle is the one SIGTERM writes
    config = write_config(tmp_path, steps=300, eval_every=25, checkpoint_every=1000)
    stopped = tmp_path / "stopped"
    proc = mnemonet_process("train", config, "--out", stopped, "--quiet")
    deadline = time.monotonic() + 120
    while not read_metrics(stopped) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGSTOP)  # frozen mid-run, holding its lock, while a second process tries to resume
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]

    before = (stopped / "config.yaml").read_bytes()
    refused = invoke("train", "--resume", stopped, "--quiet")  # a second process on a running run
    assert refused.exit_code == 2
    assert f"in use by pid {proc.pid} " in refused.output and refused.output.startswith("error:")
    assert (stopped / "config.yaml").read_bytes() == before

    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    assert "checkpoint written; continue with mnemonet train --resume" in err.decode()
    step = load_checkpoint(latest_checkpoint(stopped / "checkpoints"))[1]["step"]
    assert 25 <= step < 300

    assert invoke("train", "--resume", stopped, "--quiet").exit_code == 0
    full = tmp_path / "full"
    assert invoke("train", config, "--out", full, "--quiet").exit_code == 0
    assert (full / "metrics.jsonl").read_bytes() == (stopped / "metrics.jsonl").read_bytes()
    ta, sa = load_checkpoint(latest_checkpoint(full / "checkpoints"))
    tb, sb = load_checkpoint(latest_checkpoint(stopped / "checkpoints"))
    assert sa["step"] == sb["step"] == 300
    assert ta.keys() == tb.keys()
    for key in ta:
        if key.startswith(("model.", "optimizer.")):
            assert torch.equal(ta[key], tb[key]), key


def test_checkpoint_minutes_checkpoints_on_time(tmp_path):
    config = write_config(tmp_path, steps=4, eval_every=4, checkpoint_every=1000, keep_checkpoints=10,
                          checkpoint_minutes=1e-9)  # fmt: skip
    run = tmp_path / "run"
    assert invoke("train", config, "--out", run, "-q").exit_code == 0
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == [f"step_0000000{i}.json" for i in (1, 2, 3, 4)]


# ----------------------------------------------------------------------------------------------
# resume that fails, resume that changes the optimiser, restart in place
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def trained(tmp_path) -> Path:
    run = tmp_path / "run"
    assert invoke("train", write_config(tmp_path), "--out", run, "--set", "trainer.steps=10", "-q").exit_code == 0
    return run


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [("model.hidden_size=9", 1, "in the model; the run is unchanged: if a --set changed the model"),
     ("task.name=delayed_recal", 2, "did you mean 'delayed_recall'"),
     ("trainer.lr=1e300", 2, "trainer.lr: 1e+300 is far too large to train with")],
)  # fmt: skip
def test_a_failed_resume_leaves_the_run_as_it_was(trained, change, code, message):
    before = {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()}
    result = invoke("train", "--resume", trained, "--set", change, "--set", "trainer.steps=20")
    assert result.exit_code == code, result.output
    assert result.output.startswith("error:") and message in result.output and result.output.count("\n") == 1
    assert {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()} == before
    assert invoke("train", "--resume", trained, "--set", "trainer.steps=20", "-q").exit_code == 0  # still resumable


def test_resume_with_another_optimizer_drops_its_state_with_a_warning(trained):
    with pytest.warns(ResumeWarning, match="optimiser state of rmsprop dropped: .* trainer.optimizer=sgd"):
        result = invoke("train", "--resume", trained, "--set", "trainer.optimizer=sgd", "--set", "trainer.steps=20",
                        "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((trained / "config.yaml").read_text())["trainer"]["optimizer"] == "sgd"
    assert [r["step"] for r in read_metrics(trained)] == [10, 20]


def test_changed_hyper_parameters_take_effect_on_resume(trained):
    from mnemonet.app.run import build_run
    from mnemonet.training.config import load_config
    from mnemonet.training.trainer import Trainer

    config = load_config(trained / "config.yaml", ["trainer.momentum=0.25"])
    run = build_run(config)
    trainer = Trainer(run.model, run.task, config.trainer, run.curriculum)
    trainer.load(latest_checkpoint(trained / "checkpoints"))
    assert trainer.optimizer.param_groups[0]["momentum"] == 0.25  # the config wins over the checkpoint's 0.5
    assert trainer.optimizer.state  # and the state (square averages, momentum buffers) carried over


def test_a_run_stopped_before_its_first_checkpoint_restarts_in_place(tmp_path):
    config = write_config(tmp_path)
    run = tmp_path / "run"
    assert invoke("config", config, "--set", "trainer.steps=10").exit_code == 0
    run.mkdir()
    (run / "config.yaml").write_text(invoke("config", config, "--set", "trainer.steps=10").output)
    (run / "metrics.jsonl").write_text('{"step": 10, "valid_loss": 9.0}\n{"step": 2')  # a killed run's leftovers
    result = invoke("train", "--resume", run, "-q")
    assert result.exit_code == 0, result.output
    assert [r["step"] for r in read_metrics(run)] == [10] and read_metrics(run)[0]["valid_loss"] != 9.0
    (run / "checkpoints" / "step_00000010.json").unlink()  # as if killed again before a checkpoint
    assert invoke("train", config, "--out", run, "--set", "trainer.steps=10", "-q").exit_code == 0


# ----------------------------------------------------------------------------------------------
# one-line errors
# ----------------------------------------------------------------------------------------------


def test_disk_full_is_one_error_line(tmp_path, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(files.os, "replace", full)
    result = invoke("train", write_config(tmp_path), "--out", tmp_path / "run", "-q")
    assert result.exit_code == 1
    assert result.output == (f"error: {tmp_path / 'run' / 'config.yaml'}: No space left on device; free some space "
                             "or write the run elsewhere (--out)\n")  # fmt: skip


class NoOutputSize(nn.Module):
    """A custom recurrent module that forgot to say its output size."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.cell = nn.GRU(input_size, 4, batch_first=True)

    def forward(self, x, state=None, lengths=None):
        return self.cell(x, state)


def test_a_custom_model_without_output_size_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "no_output_size", NoOutputSize)
    result = invoke("train", write_config(tmp_path), "--out", tmp_path / "run", "--set", "model={name: no_output_size}")
    assert result.exit_code == 2
    assert result.output.startswith("error: model: model 'no_output_size': NoOutputSize has no output_size")
    assert "integer attribute output_size" in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_config_prints_the_resolved_config_that_trains_as_it_is(tmp_path):
    from mnemonet.training.config import load_config

    result = invoke("config", "copy_lstm-small", "--set", "trainer.lr=3e-3")
    assert result.exit_code == 0, result.output
    saved = tmp_path / "my.yaml"
    saved.write_text(result.output)
    assert load_config(saved) == load_config("copy_lstm-small", ["trainer.lr=3e-3"])
    assert yaml.safe_load(result.output)["trainer"]["lr"] == 3e-3
    assert invoke("config", "copy_lstm-small", "--set", "trainer.lrr=1").exit_code == 2
