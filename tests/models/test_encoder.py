"""Input encoders: the wrapper equals encoder-then-core, embeddings read integers, and a zero input no longer
ties with RIMs' null input (the tie that made RIMs collapse under noise)."""

from __future__ import annotations

import pytest
import torch

from mnemonet.models.encoder import Encoded, InputEncoder
from mnemonet.models.registry import build
from mnemonet.models.rims import RIMsCell, input_scores


def test_linear_encoder_equals_encoder_then_core_on_both_paths():
    torch.manual_seed(0)
    model = build("gru", input_size=3, hidden_size=5, encoder="linear", encoder_size=4)
    assert isinstance(model, Encoded) and model.input_size == 3 and model.core.input_size == 4
    x = torch.randn(2, 6, 3)
    y, s = model(x)
    y_ref, s_ref = model.core(x @ model.encoder.map.weight.T + model.encoder.map.bias)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(s, s_ref)
    y_loop, _, _ = model(x, return_states=True)  # the step path
    torch.testing.assert_close(y_loop, y)
    y1, _ = model.step(x[:, 0], model.initial_state(2))
    torch.testing.assert_close(y1, y[:, 0])


def test_embedding_encoder_reads_integer_symbols():
    torch.manual_seed(0)
    model = build("lstm", input_size=1, hidden_size=5, encoder="embedding", encoder_size=4, num_embeddings=10)
    x = torch.tensor([[[0.0], [3.0], [9.0]]])
    y, _ = model(x)
    y_ref, _ = model.core(model.encoder.map.weight[[0, 3, 9]][None])
    torch.testing.assert_close(y, y_ref)
    with pytest.raises(ValueError, match="integers in"):
        model(x + 0.5)
    with pytest.raises(ValueError, match="num_embeddings"):
        InputEncoder("embedding", 1, 4)
    with pytest.raises(ValueError, match="input_size 1"):
        InputEncoder("embedding", 2, 4, 10)
    with pytest.raises(ValueError, match="encoder_size"):
        build("lstm", input_size=1, hidden_size=5, encoder="linear")
    with pytest.raises(ValueError, match="encoder"):
        build("lstm", input_size=1, hidden_size=5, encoder="conv", encoder_size=3)


def test_levels_encoder_embeds_clipped_quantised_values():
    torch.manual_seed(0)
    model = build("lstm", input_size=1, hidden_size=5, encoder="levels", encoder_size=4, num_embeddings=5)
    x = torch.tensor([[[-0.7], [0.0], [0.12], [0.13], [0.5], [0.74], [1.0], [1.9]]])
    levels = [0, 0, 0, 1, 2, 3, 4, 4]  # nearest of 0, 0.25, 0.5, 0.75, 1 after clipping to [0, 1]
    y, _ = model(x)
    y_ref, _ = model.core(model.encoder.map.weight[levels][None])
    torch.testing.assert_close(y, y_ref)
    two = InputEncoder("levels", 1, 3, num_embeddings=2)  # the official MNIST input: round(pixel)
    pixels = torch.tensor([[0.2], [0.49], [0.51], [0.9]])
    torch.testing.assert_close(two(pixels), two.map.weight[[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="at least 2 levels"):
        InputEncoder("levels", 1, 4, 1)
    with pytest.raises(ValueError, match="input_size 1"):
        InputEncoder("levels", 2, 4, 3)


def test_encoder_dropout_only_in_training():
    torch.manual_seed(0)
    enc = InputEncoder("linear", 3, 64, dropout=0.5)
    x = torch.randn(4, 3)
    assert torch.equal(enc.eval()(x), enc.map(x))
    assert bool((enc.train()(x) == 0).any()) and InputEncoder("linear", 3, 64).train()(x).ne(0).all()
    with pytest.raises(ValueError, match="encoder_dropout"):
        InputEncoder("linear", 3, 4, dropout=1.0)


def run_with_trace(model, x, state=None):
    """Outputs, final state and the `[B, T, n]` active masks (through ``model.trace``)."""
    y, final, traces = model.trace(x, state)
    (key,) = [k for k in traces if k == "active" or k.endswith(".active")]  # "core.active" behind an encoder
    return y, final, traces[key]


def _scores_of_zero_input(cell: RIMsCell, x: torch.Tensor) -> torch.Tensor:
    """Input scores of a zero input for random module queries: `[B, n, H, 1]` (the null input scores 0)."""
    keys, _ = cell.project_inputs(x)  # (B, H, d_k)
    query = torch.randn(x.shape[0], cell.num_modules, cell.input_heads, cell.input_key_size)
    return input_scores(query, keys.unsqueeze(1))


def test_zero_input_and_null_input_get_different_scores():
    torch.manual_seed(0)
    zero = torch.zeros(4, 1)
    # raw pixel, no bias: a zero input has key 0, exactly the null's key, so every module ties with null
    raw = RIMsCell(1, 4, 6, k=2)
    assert torch.equal(_scores_of_zero_input(raw, zero), torch.zeros(4, 4, 1, 1))
    # input_bias: the bias acts on the real input only, so a zero input's score differs from the null's 0
    biased = RIMsCell(1, 4, 6, k=2, input_bias=True)
    assert bool((_scores_of_zero_input(biased, zero) != 0).all())
    # behind a linear encoder (with its bias) a zero pixel has its own nonzero code
    model = build("rims", input_size=1, num_modules=4, module_size=6, k=2, encoder="linear", encoder_size=8)
    code = model.encoder(zero)  # (4, 8)
    assert bool((_scores_of_zero_input(model.core.cell, code) != 0).all())
    # and the selection at a zero-input step is no longer the index tie-break {0, 1}
    torch.manual_seed(1)
    biased = build("rims", input_size=1, num_modules=4, module_size=6, k=2, input_bias=True, init="torch")
    state = biased.cell.initial_state(16)
    state = type(state)(*(torch.randn_like(t) for t in state))
    _, _, active = run_with_trace(biased, torch.zeros(16, 1, 1), state)
    raw = build("rims", input_size=1, num_modules=4, module_size=6, k=2, init="torch")
    _, _, tied = run_with_trace(raw, torch.zeros(16, 1, 1), state)
    assert bool(tied[:, 0, :2].all()) and not bool(active[:, 0, :2].all())


def test_run_with_trace_through_an_encoder():
    torch.manual_seed(0)
    model = build("rims", input_size=2, num_modules=4, module_size=6, k=3, encoder="linear", encoder_size=5)
    model.eval()
    y, _, active = run_with_trace(model, torch.randn(2, 7, 2))
    assert y.shape == (2, 7, 24) and active.shape == (2, 7, 4)
    assert torch.equal(active.sum(-1), torch.full((2, 7), 3))


def test_readout_dropout_only_in_training_and_in_configs():
    from mnemonet.app.run import build_model, build_task
    from mnemonet.models.readout import Readout
    from mnemonet.training import load_config
    from mnemonet.training.config import ConfigError

    torch.manual_seed(0)
    core = build("lstm", input_size=3, hidden_size=64)
    net, plain = Readout(core, 5, dropout=0.5), Readout(core, 5)
    plain.readout.load_state_dict(net.readout.state_dict())
    x = torch.randn(2, 4, 3)
    assert torch.equal(net.eval()(x)[0], plain.eval()(x)[0])
    # in training each hidden unit is dropped (0) or scaled by 1 / (1 - p) before the linear map
    torch.manual_seed(1)
    y_drop = net.train()(x)[0]
    torch.manual_seed(1)
    h = core(x)[0]
    mask = torch.nn.functional.dropout(torch.ones_like(h), 0.5, True)
    torch.testing.assert_close(y_drop, net.readout(h * mask))
    assert not torch.allclose(y_drop, plain.train()(x)[0])
    with pytest.raises(ValueError, match="readout_dropout"):
        Readout(core, 5, dropout=1.0)
    config = load_config("rims_seq_mnist_lstm-small", ["model.readout_dropout=0.5"])
    assert build_model(config, build_task(config)).dropout == 0.5
    dnc = load_config("dnc_copy-small", ["model.readout_dropout=0.5"])
    with pytest.raises(ConfigError, match="readout_dropout: model 'dnc' has its own readout"):
        build_model(dnc, build_task(dnc))
