"""Every task by name: the registry's errors, and the common contract (shapes, reproducibility, a
differentiable loss, the primary metric, a drawn sequence in the docstring)."""

import pytest
import torch

import mnemonet.tasks as tasks
from mnemonet.tasks import make_curriculum, make_task

SMALL = {
    "delayed_recall": {},
    "copy": {"bits": 3, "length_range": (1, 4)},
    "repeat_copy": {"bits": 3, "length_range": (1, 3), "repeat_range": (1, 2)},
    "associative_recall": {"bits": 4, "length_range": (2, 3)},
    "seq_digits": {"mode": "row"},
    "char_lm": {"seq_len": 10},
    "copy_delay": {"length": 2, "alphabet": 3, "delay": 4},
    "moving_digits": {"canvas": 16, "frames": 4, "observed": 2},
    "graph": {"num_nodes": (3, 4), "path_length": (1, 2), "num_labels": 6, "num_edge_labels": 2},
    "babi": {"story_length": (2, 3)},
}


def test_names():
    assert tasks.available_tasks() == sorted(SMALL)
    assert isinstance(make_task("copy"), tasks.CopyTask)
    assert isinstance(make_task("seq_digits", permute=True), tasks.SequentialDigitsTask)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_common_contract(name):
    task = make_task(name, **SMALL[name])
    assert task.name == name
    a = task.sample(3, torch.Generator().manual_seed(5), split="valid")
    if task.stateful:
        task.reset()
    b = task.sample(3, torch.Generator().manual_seed(5), split="valid")
    assert torch.equal(a.x, b.x) and torch.equal(a.target, b.target) and torch.equal(a.weight, b.weight)
    B, T, D = a.x.shape
    assert task.input_size == D and a.weight.shape == (B, T)
    if task.kind == "bits":
        assert a.target.shape == (B, T, task.output_size)
    elif name == "graph":  # three label parts per answer triple
        assert a.target.shape == (B, T, 3) and a.target.dtype == torch.int64
    else:
        assert a.target.shape == (B, T) and a.target.dtype == torch.int64
    logits = torch.zeros(B, T, task.output_size, requires_grad=True)
    loss = task.loss(logits, a)
    loss.backward()
    assert loss.dim() == 0 and torch.isfinite(loss) and logits.grad.abs().sum() > 0
    assert task.primary_metric in task.metrics(logits.detach(), a)
    doc = type(task).__doc__
    assert "step" in doc and "target" in doc and "weight" in doc  # the ASCII drawing of a sequence


def test_unknown_name_and_keyword():
    with pytest.raises(ValueError, match="name: unknown task 'cpy'; did you mean 'copy'"):
        make_task("cpy")
    with pytest.raises(ValueError, match="bit: not an argument of task 'copy'; did you mean 'bits'"):
        make_task("copy", bit=4)
    with pytest.raises(ValueError, match="name: unknown curriculum"):
        make_curriculum("speed", make_task("copy"))
    with pytest.raises(ValueError, match="treshold: not an argument"):
        make_curriculum("vocu", make_task("delayed_recall"), treshold=0.5)


def test_make_curriculum():
    task = make_task("delayed_recall", t_max=12)
    cur = make_curriculum("decu", task, step=3)
    assert isinstance(cur, tasks.DelayCurriculum) and task.window == 6
    assert isinstance(make_curriculum("length", make_task("copy")), tasks.LengthCurriculum)


def test_make_graph_curriculum():
    task = make_task("graph", num_nodes=(3, 7), path_length=(1, 3))
    cur = make_curriculum("graph", task, stages=3)
    assert isinstance(cur, tasks.GraphCurriculum) and task.num_nodes == (3, 3) and task.path_length == (1, 1)
