"""The command line end to end with typer's runner, on tiny configs: train -> eval -> resume, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import mnemonet
from mnemonet.cli import app
from mnemonet.training.config import list_presets
from mnemonet.training.logging import read_metrics

runner = CliRunner()

TINY = {
    "description": "tiny delayed recall for tests",
    "model": {"name": "gru", "hidden_size": 8},
    "task": {"name": "delayed_recall", "t_max": 7, "min_gap": 2},
    "curriculum": {"name": "decu", "start": 4, "step": 1, "threshold": 0.0},
    "trainer": {"steps": 20, "batch_size": 8, "eval_every": 5, "eval_batches": 1, "checkpoint_every": 5,
                "keep_checkpoints": 3, "tensorboard": False, "threads": 1, "device": "cpu"},
}  # fmt: skip


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture
def tiny_yaml(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "eval", "sample", "summary", "presets", "demo"):
        assert command in result.output
    train_help = invoke("train", "--help").output
    for option in ("--set", "--out", "--resume", "--device", "--threads"):
        assert option in train_help


def test_presets_lists_every_preset():
    result = invoke("presets")
    assert result.exit_code == 0
    for name in list_presets():
        assert name in result.output


def test_train_eval_resume(tmp_path, tiny_yaml):
    run = tmp_path / "run"
    result = invoke("train", tiny_yaml, "--out", run, "--set", "trainer.steps=10", "--set", "curriculum.threshold=1.1")
    assert result.exit_code == 0, result.output
    assert "step 10/10" in result.output  # not a terminal: one line per evaluation, no bar
    assert f"run {run}: step 10 (finished)" in result.output
    assert {"config.yaml", "metrics.jsonl", "checkpoints"} <= {p.name for p in run.iterdir()}
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["trainer"]["steps"] == 10 and saved["model"] == {"name": "gru", "hidden_size": 8}
    assert [r["step"] for r in read_metrics(run)] == [5, 10]

    result = invoke("eval", run, "--split", "valid", "--checkpoint", "last")
    assert result.exit_code == 0, result.output
    record = json.loads((run / "eval_valid.json").read_text())
    assert record["step"] == 10 and 0.0 <= record["accuracy"] <= 1.0
    # the same held-out batches as the run's last evaluation (same weights, seed and curriculum stage)
    assert record["loss"] == pytest.approx(read_metrics(run)[-1]["valid_loss"], rel=1e-6)

    before = (run / "metrics.jsonl").read_text()
    result = invoke("train", "--resume", run, "--set", "trainer.steps=20", "--quiet")
    assert result.exit_code == 0, result.output
    records = read_metrics(run)
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert (run / "metrics.jsonl").read_text().startswith(before)
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["steps"] == 20

    result = invoke("train", "--resume", run, "--quiet")  # already finished: nothing to do
    assert result.exit_code == 0 and len(read_metrics(run)) == 4


def test_out_folder_with_a_run_is_refused(tmp_path, tiny_yaml):
    run = tmp_path / "run"
    assert invoke("train", tiny_yaml, "--out", run, "--set", "trainer.steps=5", "-q").exit_code == 0
    result = invoke("train", tiny_yaml, "--out", run, "-q")
    assert result.exit_code == 2
    assert "already holds a run; use --resume" in result.output


def test_config_errors_exit_2_with_the_key_and_a_suggestion(tiny_yaml):
    result = invoke("train", tiny_yaml, "--set", "trainer.lerning_rate=0.1")
    assert result.exit_code == 2
    assert "trainer.lerning_rate: unknown key" in result.output
    result = invoke("train", tiny_yaml, "--set", "model.hiden_size=4")
    assert result.exit_code == 2 and "did you mean 'hidden_size'" in result.output
    result = invoke("train", "delayed_recall_gru-smal")
    assert result.exit_code == 2 and "did you mean 'delayed_recall_gru-small'" in result.output
    assert invoke("train").exit_code == 2


def test_damaged_checkpoint_is_reported_and_nothing_is_lost(tmp_path, tiny_yaml):
    run = tmp_path / "run"
    assert invoke("train", tiny_yaml, "--out", run, "--set", "trainer.steps=10", "-q").exit_code == 0
    newest = run / "checkpoints" / "step_00000010.safetensors"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x55
    newest.write_bytes(bytes(data))
    before = snapshot(run)
    result = invoke("train", "--resume", run, "--set", "trainer.steps=20")
    assert result.exit_code == 1
    assert "step_00000010.safetensors: damaged checkpoint weights" in result.output
    assert "older checkpoints: step_00000005.json" in result.output
    result = invoke("eval", run, "--checkpoint", "last")
    assert result.exit_code == 1 and "damaged checkpoint weights" in result.output
    assert snapshot(run) == before  # nothing written, nothing deleted


def test_summary_of_a_model_name_and_of_a_preset(tiny_yaml):
    result = invoke("summary", "lstm", "--set", "hidden_size=16", "--input-size", "3")
    assert result.exit_code == 0, result.output
    assert "Total params: 1,344" in result.output  # 4*16*(3 + 16) weights + 2*4*16 biases
    result = invoke("summary", tiny_yaml)
    assert result.exit_code == 0, result.output
    assert "readout" in result.output
    result = invoke("summary", "lstm", "--set", "hidden_sise=16")
    assert result.exit_code == 2 and "did you mean 'hidden_size'" in result.output
    result = invoke("summary", "dnc", "--set", "hidden_size=64")  # as the README shows it
    assert result.exit_code == 0, result.output
    assert "(dnc with output_size=8, memory_size=16, word_size=8, num_reads=2; change them with --set)" in result.output
    dnc = mnemonet.build("dnc", input_size=8, hidden_size=64, output_size=8, memory_size=16, word_size=8, num_reads=2)
    assert f"Total params: {sum(p.numel() for p in dnc.parameters()):,}" in result.output
    result = invoke("summary", "gru", "--set", "input_size=5", "--set", "hidden_size=4")
    assert result.exit_code == 0 and "Total params: 132" in result.output  # 3*4*(5 + 4) + 2*3*4


def test_sample_from_a_char_model(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("abcabcabd " * 400)
    cfg = {"model": {"name": "gru", "hidden_size": 16}, "task": {"name": "char_lm", "corpus": "text8",
           "path": str(text), "seq_len": 10}, "trainer": {"steps": 30, "batch_size": 4, "lr": 0.02, "eval_every": 30,
           "eval_batches": 1, "checkpoint_every": 30, "tensorboard": False, "threads": 1}}  # fmt: skip
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "lm"
    assert invoke("train", tmp_path / "lm.yaml", "--out", run, "-q").exit_code == 0
    result = invoke("sample", run, "--prime", "ab", "--length", "12", "--temperature", "0")
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("ab") and len(line) == 14
    assert set(line) <= set("abcd ")
    again = invoke("sample", run, "--prime", "ab", "--length", "12", "--temperature", "0").output
    assert again == result.output  # greedy sampling is deterministic


def test_sample_refuses_a_non_text_run(tmp_path, tiny_yaml):
    run = tmp_path / "run"
    assert invoke("train", tiny_yaml, "--out", run, "--set", "trainer.steps=5", "-q").exit_code == 0
    result = invoke("sample", run)
    assert result.exit_code == 2 and "not a text task" in result.output


@pytest.mark.parametrize("given", [True, False], ids=["out", "default-folder"])
def test_demo_writes_table_plot_and_json(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)
    args = ["--out", tmp_path / "demo"] if given else []  # without --out, as `make demo` runs it
    result = invoke("demo", *args, "--steps", "10", "--threads", "1", "--trials", "20")
    assert result.exit_code == 0, result.output
    out = tmp_path / "demo" if given else Path(next((tmp_path / "runs").glob("demo-*")))
    shown = out if given else out.relative_to(tmp_path)
    assert "accuracy vs delay" in result.output and f"run folder: {shown}" in result.output
    record = json.loads((out / "accuracy_vs_delay.json").read_text())
    assert set(record["accuracy"]) == {"5", "10", "15", "19", "30", "40", "60", "100"}
    assert (out / "accuracy_vs_delay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_and_eval_never_unpickle(tmp_path, tiny_yaml, monkeypatch):
    import pickle

    import torch

    run = tmp_path / "run"
    assert invoke("train", tiny_yaml, "--out", run, "--set", "trainer.steps=5", "-q").exit_code == 0

    def forbidden(*args, **kwargs):
        raise AssertionError("a checkpoint was unpickled")

    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, forbidden)
    assert invoke("train", "--resume", run, "--set", "trainer.steps=10", "-q").exit_code == 0
    assert invoke("eval", run, "--checkpoint", "best").exit_code == 0
