"""The -small presets of moving digits (LSTM / RIMs / BRIMs), graph tasks and bAbI (DNC / LSTM) train for
50 steps at tiny sizes (each ~1-3 s on one thread): the loss is finite and falls."""

import math

import pytest
import torch

from mnemonet.app.run import build_run
from mnemonet.training.config import load_config
from mnemonet.training.trainer import Trainer

TINY_FRAMES = ["task.canvas=16", "task.num_digits=1", "task.frames=4", "task.observed=2", "model.embed_size=16"]
TINY_DNC = ["model.hidden_size=16", "model.memory_size=8", "model.word_size=6", "model.num_reads=1"]
PRESETS = {
    "moving_digits_lstm-small": [*TINY_FRAMES, "model.hidden_size=16"],
    "moving_digits_rims-small": [*TINY_FRAMES, "model.num_modules=3", "model.module_size=6", "model.k=2"],
    "moving_digits_brims-small": [*TINY_FRAMES, "model.num_modules=3", "model.module_size=4", "model.k=2"],
    "graph_dnc-small": [*TINY_DNC, "task.num_nodes=[3,4]", "task.path_length=[1,2]", "task.num_labels=6"],
    "graph_lstm-small": ["model.hidden_size=24", "task.num_nodes=[3,4]", "task.path_length=[1,2]", "task.num_labels=6"],
    "babi_dnc-small": [*TINY_DNC, "task.story_length=[1,2]", "task.tasks=[1,6]"],
    "babi_lstm-small": ["model.hidden_size=24", "task.story_length=[1,2]", "task.tasks=[1,6]"],
    "dnc_copy_sdnc-small": [*TINY_DNC, "model.memory_size=64", "task.length_range=[1,4]"],
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_small_preset_trains_for_50_steps(name):
    steps = ["trainer.steps=50", "trainer.batch_size=8", "trainer.eval_every=50", "trainer.eval_batches=1",
             "trainer.tensorboard=false", "trainer.threads=1"]  # fmt: skip
    config = load_config(name, [*PRESETS[name], *steps])
    run = build_run(config)
    torch.set_num_threads(1)
    trainer = Trainer(run.model, run.task, config.trainer, run.curriculum, progress="off")
    losses = [trainer.train_step() for _ in range(50)]
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-10:]) < sum(losses[:10]), f"{name}: loss did not fall ({losses[:3]} ... {losses[-3:]})"
    metrics = trainer.evaluate()
    assert run.task.primary_metric in metrics and math.isfinite(metrics["loss"])
