"""FramePredictor: the one-call observed prefix equals the step loop, free running equals teacher forcing
on the model's own predictions, padding, layer states, and size errors."""

import pytest
import torch

import mnemonet
from mnemonet.models.frames import FramePredictor, layer_states

CORES = {
    "lstm": {"hidden_size": 12},
    "rims": {"num_modules": 3, "module_size": 4, "k": 2, "input_key_size": 8, "comm_key_size": 8, "comm_heads": 1},
    "brims": {"num_modules": 3, "module_size": 4, "k": 2, "num_layers": 2, "input_key_size": 8,
              "comm_key_size": 8, "comm_heads": 1},
}  # fmt: skip


def video(B=3, T=6, k=3, side=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(B, T, side * side + 1)
    x[:, :k, : side * side] = torch.rand(B, k, side * side, generator=g)
    x[:, :k, side * side] = 1.0
    return x


def net(core, encoder="mlp", side=8):
    torch.manual_seed(0)
    return mnemonet.build("frame_predictor", input_size=side * side + 1, output_size=side * side, core=core,
                          encoder=encoder, embed_size=10, channels=2, **CORES[core])  # fmt: skip


@pytest.mark.parametrize("core", sorted(CORES))
@pytest.mark.parametrize("encoder", ["mlp", "conv"])
def test_sequence_equals_step_loop(core, encoder):
    model, x = net(core, encoder).eval(), video()  # RIMs/BRIMs drop out 0.1 in training by default
    y, state, states = model(x, return_states=True)
    s = model.initial_state(3)
    ref, ref_states = [], []
    for t in range(x.shape[1]):
        y_t, s = model.step(x[:, t], s, t=t)
        ref.append(y_t)
        ref_states.append(model.flatten_state(s))
    torch.testing.assert_close(y, torch.stack(ref, 1))
    torch.testing.assert_close(states, torch.stack(ref_states, 1))
    torch.testing.assert_close(model.flatten_state(state), ref_states[-1])


def test_free_running_equals_teacher_forcing_on_its_own_predictions():
    model, x = net("lstm"), video(k=2)
    P = 64
    with torch.no_grad():
        free, _ = model(x)
        forced = x.clone()
        for t in range(2, x.shape[1]):
            forced[:, t, :P] = torch.sigmoid(free[:, t - 1])
            forced[:, t, P] = 1.0
        teacher, _ = model(forced)
    torch.testing.assert_close(free, teacher)
    noisy = x.clone()
    noisy[:, 2:, :P] = torch.rand(3, 4, P)  # pixels of unobserved steps are ignored
    torch.testing.assert_close(model(noisy)[0], free)


def test_padding_stops_the_state():
    model, x = net("lstm"), video(B=2, T=5, k=2)
    lengths = torch.tensor([5, 3])
    y, state = model(x, lengths=lengths)
    y_short, state_short = model(x[1:, :3])
    torch.testing.assert_close(y[1, :3], y_short[0])
    assert y[1, 3:].abs().sum() == 0
    torch.testing.assert_close(model.flatten_state(state)[1], model.flatten_state(state_short)[0])


def test_gradients_reach_encoder_core_and_decoder():
    model, x = net("brims", "conv"), video()
    model(x)[0].sum().backward()
    for name in ("encoder", "core", "decoder"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0, name


def test_layer_states():
    for core, layers in (("lstm", 1), ("rims", 1), ("brims", 2)):
        model = net(core)
        _, state = model(video())
        hs = layer_states(state.core)
        assert len(hs) == layers and all(h.shape[0] == 3 and h.dim() == 2 for h in hs)
    assert len(layer_states(mnemonet.build("dnc", input_size=3, output_size=2, hidden_size=4, memory_size=4,
                                           word_size=2, num_reads=1).initial_state(2))) == 1  # fmt: skip


def test_size_errors():
    with pytest.raises(ValueError, match="input_size"):
        FramePredictor(10, 8)
    with pytest.raises(ValueError, match="divisible by 4"):
        FramePredictor(37, 36, encoder="conv", hidden_size=4)
    with pytest.raises(ValueError, match="encoder"):
        FramePredictor(17, 16, encoder="gru", hidden_size=4)
