"""DistributedDataParallel on CPU: two gloo processes under torchrun end with identical weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mnemonet.app.run import train
from mnemonet.training.checkpoint import latest_checkpoint, load_checkpoint
from mnemonet.training.config import load_config
from mnemonet.training.distributed import DistInfo, all_true, broadcast_text, env_info, gather

TINY = {
    "model": {"name": "gru", "hidden_size": 8},
    "task": {"name": "delayed_recall", "t_max": 7, "min_gap": 2},
    "trainer": {"steps": 6, "batch_size": 4, "eval_every": 3, "eval_batches": 1, "checkpoint_every": 3,
                "tensorboard": False, "progress": "off", "threads": 1, "device": "cpu"},
}  # fmt: skip


def test_helpers_without_a_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert env_info() == DistInfo(0, 1, 0) and env_info().is_main and not env_info().enabled
    assert all_true(True) and not all_true(False)
    assert broadcast_text("x") == "x"
    t = torch.ones(2)
    assert gather(t)[0] is t
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE/RANK/LOCAL_RANK: expected integers"):
        env_info()


@pytest.mark.slow
def test_two_cpu_processes_end_with_identical_weights(tmp_path):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(TINY))
    worker = Path(__file__).with_name("_training_ddp_worker.py")
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
           str(tmp_path), str(cfg_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-8000:]

    w0 = load_file(str(tmp_path / "rank0.safetensors"))
    w1 = load_file(str(tmp_path / "rank1.safetensors"))
    assert w0.keys() == w1.keys()
    for key in w0:
        assert torch.equal(w0[key], w1[key]), key
    # rank 0 wrote the run folder; its last checkpoint holds the same weights
    tensors, state = load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"))
    assert state["step"] == 6 and state["world_size"] == 2
    assert len(state["rng"]["generator"]) == 2  # both ranks' batch streams are saved
    for key in w0:
        assert torch.equal(tensors[f"model.{key}"], w0[key])
    # each rank drew its own batches: the averaged gradients differ from one process's
    _, single = train(load_config(TINY), out=tmp_path / "single", progress="off")
    assert any(not torch.equal(single.model.state_dict()[k], w0[k]) for k in w0)
