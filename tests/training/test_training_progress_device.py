"""Progress output modes, device choice and thread settings."""

from __future__ import annotations

import io

import pytest
import torch

from mnemonet.training.device import DEFAULT_THREADS, choose_device, num_threads
from mnemonet.training.progress import Progress

RECORD = {"step": 20, "lr": 0.001, "train_loss": 0.41234, "valid_loss": 0.5, "valid_accuracy": 0.83}


def test_lines_mode_prints_one_line_per_evaluation(capsys):
    with Progress(100, mode="lines") as p:
        for step in range(1, 21):
            p.step(step, 0.5)
        p.evaluated(20, RECORD, "window 6/20")
        p.message("curriculum advanced")
    out = capsys.readouterr().out.splitlines()
    assert out == ["step 20/100  loss 0.4123  valid_loss 0.5  valid_accuracy 0.83  window 6/20", "curriculum advanced"]


def test_off_mode_prints_nothing(capsys):
    with Progress(10, mode="off") as p:
        p.step(1, 0.1)
        p.evaluated(1, RECORD)
        p.message("x")
    assert capsys.readouterr().out == ""


def test_auto_mode_is_lines_when_stdout_is_not_a_terminal(capsys):
    assert Progress(10, mode="auto").mode == "lines"  # pytest captures stdout: not a TTY


def test_bar_mode_shows_loss_metric_and_stage():
    from rich.console import Console

    buf = io.StringIO()
    p = Progress(100, mode="bar", console=Console(file=buf, force_terminal=True, width=150))
    with p:
        p.step(20, 0.4123)
        p.evaluated(20, RECORD, "window 6/20")
    text = buf.getvalue()
    assert "loss 0.4123" in text and "accuracy 0.83" in text and "window 6/20" in text and "20/100" in text


def test_choose_device():
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="device: expected 'auto', 'cpu'"):
        choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            choose_device("cuda:0")
        assert choose_device("auto") in (torch.device("cpu"), torch.device("mps"))


def test_num_threads_sets_and_restores():
    before = torch.get_num_threads()
    with num_threads(None) as n:
        assert n == DEFAULT_THREADS == torch.get_num_threads()
    with num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
