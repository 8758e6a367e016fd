"""Checkpoint files: packing, atomic writes, round trips, damage detection, pruning; metrics files."""

from __future__ import annotations

import json
import os

import pytest
import torch

from mnemonet import files
from mnemonet.training import checkpoint as ck
from mnemonet.training.checkpoint import (
    CheckpointError,
    atomic_write_text,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    pack,
    prune_checkpoints,
    save_checkpoint,
    unpack,
)
from mnemonet.training.logging import MetricsLog, read_metrics, truncate_metrics


def test_pack_unpack_round_trip():
    state = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.arange(4.0)}, 1: {}},
        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 1], "foreach": None}],
        "__odd": True,
        "nested": [1, "a", 2.5, None, (torch.ones(2, 2), "b")],
    }
    tensors = {}
    packed = pack(state, "x", tensors)
    text = json.dumps(packed)  # JSON-able
    back = unpack(json.loads(text), tensors)
    assert back["state"][0]["exp_avg"].equal(torch.arange(4.0))
    assert set(back["state"]) == {0, 1}  # int keys survive
    assert back["param_groups"][0]["betas"] == (0.9, 0.999)  # tuples survive
    assert back["__odd"] is True
    assert back["nested"][4][0].equal(torch.ones(2, 2)) and back["nested"][4][1] == "b"
    with pytest.raises(CheckpointError, match=r"x\.bad: cannot store a object"):
        pack({"bad": object()}, "x", {})


def test_save_load_round_trip_and_listing(tmp_path):
    for step in (5, 10, 20):
        save_checkpoint(tmp_path, ck.checkpoint_name(step), {"w": torch.full((2,), float(step))}, {"step": step})
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000005.json", "step_00000010.json",
                                                             "step_00000020.json"]  # fmt: skip
    tensors, state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state == {"step": 20} and tensors["w"].equal(torch.full((2,), 20.0))
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step_00000010.json", "step_00000010.safetensors", "step_00000020.json", "step_00000020.safetensors"
    ]  # fmt: skip


def test_optimizer_state_round_trip_gives_identical_updates(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3)).square().sum().backward()
        opt.step()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path, "c", tensors, {"optimizer": pack(opt.state_dict(), "optimizer", tensors)})
    loaded, state = load_checkpoint(path)
    model2 = torch.nn.Linear(3, 2)
    model2.load_state_dict({k[6:]: v for k, v in loaded.items() if k.startswith("model.")})
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.01)
    opt2.load_state_dict(unpack(state["optimizer"], loaded))
    x = torch.randn(4, 3)
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).square().sum().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)


def test_damaged_files_raise_naming_the_file(tmp_path):
    path = save_checkpoint(tmp_path, "step_00000001", {"w": torch.ones(100)}, {"step": 1})
    weights = tmp_path / "step_00000001.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"step_00000001\.safetensors: damaged checkpoint weights"):
        load_checkpoint(path)
    weights.unlink()
    with pytest.raises(CheckpointError, match=r"step_00000001\.safetensors: checkpoint weights missing"):
        load_checkpoint(path)
    path.write_text('{"format": "mnemonet-checkpoint/1", "sta')
    with pytest.raises(CheckpointError, match=r"step_00000001\.json: damaged checkpoint state"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nothing.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"other\.json: not a mnemonet checkpoint"):
        load_checkpoint(tmp_path / "other.json")


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "config.yaml"
    atomic_write_text(target, "old\n")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["config.yaml"]  # no temporary file left behind


def test_metrics_truncation_drops_later_and_partial_lines(tmp_path):
    log = MetricsLog(tmp_path, tensorboard=False)
    for step in (10, 20, 30):
        log.record({"step": step, "valid_loss": step / 10})
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 40, "valid_lo')  # a line cut short by a kill
    assert [r["step"] for r in read_metrics(tmp_path)] == [10, 20, 30]
    truncate_metrics(tmp_path / "metrics.jsonl", 20)
    assert (
        tmp_path / "metrics.jsonl"
    ).read_text() == '{"step": 10, "valid_loss": 1.0}\n{"step": 20, "valid_loss": 2.0}\n'


def test_metrics_log_writes_tensorboard_events(tmp_path):
    log = MetricsLog(tmp_path, tensorboard=True)
    log.record({"step": 1, "valid_accuracy": 0.5, "curriculum": "window 6/20"})
    log.close()
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    assert MetricsLog(None).path is None
