"""Every registered model refuses a wrong-dtype or empty sequence with one clear error, and runs in float64."""

from __future__ import annotations

import pytest
import torch

from mnemonet.models.registry import available, build

SIZES = {
    "rnn": {"hidden_size": 6}, "lstm": {"hidden_size": 6}, "gru": {"hidden_size": 6},
    "bn_lstm": {"hidden_size": 6, "max_length": 5},
    # init="torch": the official init (0.01-scale attention maps) leaves the selection scores within float32
    # rounding of each other at first, so float32 and float64 could select different modules
    "rims": {"num_modules": 4, "module_size": 3, "k": 2, "init": "torch"},
    "brims": {"num_modules": 4, "module_size": 3, "k": 2, "init": "torch"},
    "dnc": {"hidden_size": 6, "output_size": 4, "memory_size": 5, "word_size": 3, "num_reads": 1},
    "frame_predictor": {"input_size": 5, "output_size": 4, "embed_size": 4, "hidden_size": 6},  # a 2x2 frame + flag
}  # fmt: skip


def make(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build(name, **{"input_size": 3, **SIZES[name]})


def test_every_registered_model_is_covered():
    import mnemonet  # noqa: F401  (registers every model)

    assert set(available()) <= set(SIZES)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_input_of_another_dtype_is_refused_by_name(name):
    model = make(name)
    with pytest.raises(ValueError, match=r"^x: dtype float64 does not match the model's parameters \(float32\)"):
        model(torch.randn(2, 5, model.input_size, dtype=torch.float64))


@pytest.mark.parametrize("name", sorted(SIZES))
def test_float64_model_runs_float64_input_like_float32(name):
    model = make(name).eval()  # RIMs/BRIMs drop out 0.1 in training by default (the official code's dropout)
    x = torch.randn(2, 5, model.input_size)
    y32, _ = model(x)
    y64, _ = model.to(torch.float64)(x.double())
    assert y64.dtype == torch.float64
    torch.testing.assert_close(y64.float(), y32, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_empty_sequence_is_refused(name):
    model = make(name)
    D = model.input_size
    with pytest.raises(ValueError, match=rf"^x: expected at least one time step \(T >= 1\), got shape \(2, 0, {D}\)"):
        model(torch.zeros(2, 0, D))
