"""State bounds through the model contract: GRU, tanh RNN and LSTM's h are bounded by 1, and a long run from
random states under random inputs never leaves them; relu RNN and LSTM's c are unbounded."""

import math

import pytest
import torch

import mnemonet


@pytest.mark.parametrize(
    "name, kwargs", [("gru", {}), ("rnn", {}), ("rnn", {"nonlinearity": "softsign"}), ("lstm", {})]
)
def test_bounded_cells_stay_inside_their_bounds(name, kwargs):
    torch.manual_seed(0)
    model = mnemonet.build(name, input_size=3, hidden_size=5, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)  # large weights: saturating gates
    low, high = model.state_bounds()
    assert low.shape == high.shape == (model.state_size,)
    with torch.no_grad():
        _, _, states = model(5 * torch.randn(8, 200, 3), return_states=True)  # (B, T, S)
    bounded = torch.isfinite(high)
    assert int(bounded.sum()) == 5  # h only (LSTM's c is unbounded)
    assert bool((states[..., bounded].abs() <= high[bounded]).all())
    if name == "lstm":
        assert float(states[..., ~bounded].abs().max()) > 1.0  # c does leave [-1, 1]


def test_unbounded_cells_and_wrappers():
    relu = mnemonet.build("rnn", input_size=2, hidden_size=3, nonlinearity="relu")
    low, high = relu.state_bounds(dtype=torch.float64)
    assert bool(torch.isinf(high).all()) and bool((low == -high).all()) and high.dtype == torch.float64
    readout = mnemonet.models.Readout(mnemonet.build("gru", input_size=2, hidden_size=3), output_size=4)
    assert readout.state_bounds()[1].tolist() == [1.0, 1.0, 1.0]
    assert math.isinf(
        float(
            mnemonet.build("dnc", input_size=2, output_size=2, hidden_size=4, memory_size=3, word_size=2, num_reads=1)
            .state_bounds()[1]
            .max()
        )
    )
