"""BN-LSTM (Cooijmans et al., 2017) against a plain-loop reference with per-step statistics computed by hand.

Covers: train and eval modes of every variant, steps past max_length, padding, reestimate_statistics,
gradients reaching every parameter, state_dict round trip, Stacked/Bidirectional, bad input. The kernel
against the step loop: tests/kernels/test_bn_lstm_kernel.py.
"""

from __future__ import annotations

import copy

import pytest
import torch

from bn_lstm_reference import VARIANTS, H, I, L, close, make, randomise, reference, run
from mnemonet.models.bn_lstm import BNLSTMCell, bn_lstm
from mnemonet.models.recurrent import Bidirectional, Recurrent, Stacked, reverse_padded
from mnemonet.models.registry import build
from mnemonet.models.seq_norm import StepBatchNorm, masked_moments
from mnemonet.tasks.base import Batch

# ----------------------------------------------------------------------------------------------------------
# values against the reference
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("path", ["fast", "step"])
def test_matches_reference(variant, training, padded, path):
    model = make(variant).train(training)
    x = torch.randn(6, 7, I, dtype=torch.float64)  # T = 7 > max_length = 4
    lengths = torch.tensor([7, 3, 5, 7, 1, 6]) if padded else None
    ref_y, (ref_h, ref_c), _ = reference(copy.deepcopy(model.cell), x, lengths, training)
    y, s, _, _ = run(model, x, lengths, path)
    close(y, ref_y)
    close(s.h, ref_h)
    close(s.c, ref_c)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("path", ["fast", "step"])
def test_running_statistics_follow_batch_statistics(variant, padded, path):
    """Slot t moves by momentum towards step t's batch mean and unbiased variance; slots past T do not move."""
    model = make(variant, momentum=0.25).train()
    before = {k: b.clone() for k, b in model.named_buffers()}
    x = torch.randn(5, 6, I, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4, 6, 3]) if padded else None
    _, _, stats = reference(copy.deepcopy(model.cell), x, lengths, True)
    run(model, x, lengths, path)
    for name, per_step in stats.items():
        bn = getattr(model.cell, name)
        for s in range(L):
            mean, var, n = per_step[s]  # steps 4, 5 (>= max_length) update nothing
            old_m, old_v = before[f"cell.{name}.running_mean"][s], before[f"cell.{name}.running_var"][s]
            close(bn.running_mean[s], 0.75 * old_m + 0.25 * mean)
            close(bn.running_var[s], 0.75 * old_v + 0.25 * var * n / (n - 1))
        assert bn.num_batches_tracked.tolist() == [1] * L


def test_running_statistics_beyond_max_length_are_not_updated():
    model = make("full").train()
    x = torch.randn(4, 2, I, dtype=torch.float64)  # T = 2 < max_length: slots 2, 3 untouched
    before = model.cell.bn_h.running_mean.clone()
    run(model, x)
    assert torch.equal(model.cell.bn_h.running_mean[2:], before[2:])
    assert not torch.equal(model.cell.bn_h.running_mean[:2], before[:2])
    assert model.cell.bn_h.num_batches_tracked.tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("path", ["fast", "step"])
def test_steps_past_max_length_use_the_last_statistics(path):
    """In evaluation, steps t >= max_length - 1 read slot max_length - 1 only; earlier slots leave them alone."""
    model = make("full").eval()
    x = torch.randn(3, 7, I, dtype=torch.float64)
    y0, _, _, _ = run(model, x, path=path)
    with torch.no_grad():
        for bn in model.cell.norms:
            bn.running_mean[: L - 1] += 5.0  # changes steps 0..L-2 (and, through the state, all later ones)
    y1, _, _, _ = run(model, x, path=path)
    assert not torch.allclose(y0[:, : L - 1], y1[:, : L - 1])
    # a model whose last slot changes differs from step L-1 on, not before
    model2 = make("full").eval()
    y2, _, _, _ = run(model2, x, path=path)
    with torch.no_grad():
        for bn in model2.cell.norms:
            bn.running_var[L - 1] *= 3.0
    y3, _, _, _ = run(model2, x, path=path)
    close(y2[:, : L - 1], y3[:, : L - 1])
    assert (y2[:, L - 1 :] - y3[:, L - 1 :]).abs().amin(dim=(0, 2)).gt(0).all()


# ----------------------------------------------------------------------------------------------------------
# fast path = step path
# ----------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------
# padding
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("path", ["fast", "step"])
def test_padding_changes_nothing(variant, path):
    """What the padded positions hold changes no output, state, gradient or running statistic."""
    model = make(variant).train()
    lengths = torch.tensor([5, 2, 4, 5, 3])
    x = torch.randn(5, 5, I, dtype=torch.float64)
    pad = torch.arange(5)[None] >= lengths[:, None]  # (B, T)
    x1 = torch.where(pad[..., None], 1e3, x)
    x2 = torch.where(pad[..., None], -7.0, x)
    a = run(copy.deepcopy(model), x1, lengths, path)
    b = run(copy.deepcopy(model), x2, lengths, path)
    close(a[0], b[0])
    assert torch.all(a[0][pad] == 0)
    close(a[1].h, b[1].h)
    for k in a[2]:
        close(a[2][k], b[2][k], 1e-9)
    for k in a[3]:
        close(a[3][k].double(), b[3][k].double())


def test_eval_rows_are_independent_and_padding_is_a_shorter_sequence():
    """In evaluation a padded row gives what its real part alone gives (population statistics, no batch mixing)."""
    model = make("full").eval()
    lengths = torch.tensor([6, 3, 5])
    x = torch.randn(3, 6, I, dtype=torch.float64)
    with torch.no_grad():
        y, s = model(x, lengths=lengths)
        for b in range(3):
            yb, sb = model(x[b : b + 1, : lengths[b]])
            close(y[b, : lengths[b]], yb[0])
            close(s.h[b], sb.h[0])


# ----------------------------------------------------------------------------------------------------------
# sequence-wise normalisation
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("padded", [False, True])
def test_sequence_normalization_matches_reference(training, padded):
    model = make("input_only", normalization="sequence", momentum=0.5).train(training)
    before_m = model.cell.bn_x.running_mean.clone()
    before_v = model.cell.bn_x.running_var.clone()
    x = torch.randn(5, 6, I, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4, 6, 1]) if padded else None
    ref_y, (ref_h, _), stats = reference(copy.deepcopy(model.cell), x, lengths, training)
    y, s, _, _ = run(model, x, lengths)
    close(y, ref_y)
    close(s.h, ref_h)
    assert model.cell.bn_x.running_mean.shape == (1, 4 * H)
    if training:
        mean, var, n = stats["bn_x"][0]
        close(model.cell.bn_x.running_mean[0], 0.5 * before_m[0] + 0.5 * mean)
        close(model.cell.bn_x.running_var[0], 0.5 * before_v[0] + 0.5 * var * n / (n - 1))


# ----------------------------------------------------------------------------------------------------------
# reestimate_statistics
# ----------------------------------------------------------------------------------------------------------


def test_reestimate_statistics_is_the_average_of_batch_statistics():
    model = make("full", momentum=0.3)
    batches = [torch.randn(4, 6, I, dtype=torch.float64), (torch.randn(5, 3, I, dtype=torch.float64), None)]
    x3 = torch.randn(5, 5, I, dtype=torch.float64)
    l3 = torch.tensor([5, 1, 2, 5, 4])
    batches.append(Batch(x3, torch.zeros(5, 5, dtype=torch.long), torch.ones(5, 5), l3))
    model.eval()
    # batch statistics of each batch, from the reference, with the weights the model has
    per_batch = []
    for xb, lb in ((batches[0], None), (batches[1][0], None), (x3, l3)):
        per_batch.append(reference(copy.deepcopy(model.cell), xb, lb, True)[2])
    assert model.reestimate_statistics(batches) == 3
    assert not model.training and not model.cell.bn_h.training  # mode restored
    assert model.cell.bn_h.momentum == 0.3
    for name in ("bn_x", "bn_h", "bn_c"):
        bn = getattr(model.cell, name)
        for s in range(L):
            seen = [st[name][s] for st in per_batch if s in st[name] and st[name][s][2] >= 2]
            assert bn.num_batches_tracked[s] == len(seen)
            close(bn.running_mean[s], sum(m for m, _, _ in seen) / len(seen))
            close(bn.running_var[s], sum(v * n / (n - 1) for _, v, n in seen) / len(seen))


def test_reestimate_statistics_turns_dropout_off_and_restores_modes():
    model = bn_lstm(I, H, L, num_layers=2, dropout=0.5).double().train()
    batches = [torch.randn(4, 5, I, dtype=torch.float64) for _ in range(2)]
    model.reestimate_statistics(batches)
    first = {k: b.clone() for k, b in model.named_buffers()}
    model.reestimate_statistics(batches)  # dropout would make the second pass differ
    for k, b in model.named_buffers():
        close(b.double(), first[k].double())
    assert all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="model: expected a module with population statistics"):
        build("gru", input_size=I, hidden_size=H).reestimate_statistics(batches)


# ----------------------------------------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_every_parameter(variant):
    model = bn_lstm(I, H, L, variant=variant).double().train()
    x = torch.randn(5, 6, I, dtype=torch.float64)
    _, _, grads, _ = run(model, x, torch.tensor([6, 3, 5, 6, 4]))
    expected = {"cell.weight_ih", "cell.weight_hh", "cell.bias"}
    expected |= {
        "full": {"cell.bn_x.weight", "cell.bn_h.weight", "cell.bn_c.weight", "cell.bn_c.bias"},
        "input_only": {"cell.bn_x.weight"},
        "summed": {"cell.bn_gates.weight"},
    }[variant]
    assert set(grads) == expected
    for name, g in grads.items():
        assert torch.isfinite(g).all() and g.abs().sum() > 0, name


# ----------------------------------------------------------------------------------------------------------
# initialisation, serialisation, composition
# ----------------------------------------------------------------------------------------------------------


def test_initialisation_as_in_the_paper():
    cell = BNLSTMCell(I, H, L)
    assert torch.all(cell.bn_x.weight == 0.1) and torch.all(cell.bn_h.weight == 0.1)
    assert torch.all(cell.bn_c.weight == 0.1) and torch.all(cell.bn_c.bias == 0)
    assert cell.bn_x.bias is None and cell.bn_h.bias is None  # β of the gate BNs fixed at 0
    assert torch.all(cell.bias[H : 2 * H] == 1) and cell.bias[:H].abs().sum() == 0
    assert cell.bias[2 * H :].abs().sum() == 0
    for k in range(4):
        block = cell.weight_hh[k * H : (k + 1) * H].detach()
        close(block @ block.T, torch.eye(H), 1e-5)
    assert torch.all(BNLSTMCell(I, H, L, gamma_init=0.3).bn_h.weight == 0.3)
    assert torch.all(cell.bn_h.running_var == 1) and cell.bn_h.running_mean.shape == (L, 4 * H)


def test_state_dict_round_trip():
    model = make("full").train()
    run(model, torch.randn(4, 5, I, dtype=torch.float64))  # move the running statistics
    fresh = bn_lstm(I, H, L).double()
    fresh.load_state_dict(model.state_dict())
    assert "cell.bn_h.running_mean" in model.state_dict()
    model.eval()
    fresh.eval()
    x = torch.randn(3, 6, I, dtype=torch.float64)
    with torch.no_grad():
        close(model(x)[0], fresh(x)[0], 0)


def test_build_stacked_and_bidirectional():
    one = build("bn_lstm", input_size=I, hidden_size=H, max_length=L)
    assert isinstance(one, Recurrent) and isinstance(one.cell, BNLSTMCell)
    deep = build("bn_lstm", input_size=I, hidden_size=H, max_length=L, num_layers=2, bidirectional=True)
    assert isinstance(deep, Stacked) and all(isinstance(layer, Bidirectional) for layer in deep.layers)
    assert deep.layers[1].fwd.cell.input_size == 2 * H
    y, state = deep(torch.randn(3, 6, I), lengths=torch.tensor([6, 2, 4]))
    assert y.shape == (3, 6, 2 * H) and len(state) == 2 and state[0].forward.h.shape == (3, H)
    with pytest.raises(ValueError, match="gamma"):
        build("bn_lstm", input_size=I, hidden_size=H, max_length=L, gama_init=0.1)


def test_bidirectional_reverses_only_the_real_part():
    """The backward direction at step t of row b equals a forward run over that row's real steps, reversed."""
    model = randomise(bn_lstm(I, H, L, bidirectional=True).double()).eval()
    layer = model.layers[0]
    lengths = torch.tensor([6, 3, 5])
    x = torch.randn(3, 6, I, dtype=torch.float64)
    with torch.no_grad():
        y, _ = model(x, lengths=lengths)
        for b in range(3):
            n = int(lengths[b])
            back, _ = layer.bwd(x[b : b + 1, :n].flip(1))
            close(y[b, :n, H:], back[0].flip(0))
            fwd, _ = layer.fwd(x[b : b + 1, :n])
            close(y[b, :n, :H], fwd[0])
        close(reverse_padded(reverse_padded(x, lengths), lengths), x, 0)


def test_step_uses_statistics_of_its_time_index():
    cell = randomise(BNLSTMCell(I, H, L).double()).eval()
    x_t = torch.randn(2, I, dtype=torch.float64)
    state = cell.initial_state(2, dtype=torch.float64)
    outs = [cell(x_t, state, t=t)[0] for t in range(L + 2)]
    for t in range(1, L):
        assert not torch.allclose(outs[t], outs[t - 1])
    close(outs[L - 1], outs[L])
    close(outs[L], outs[L + 1])


# ----------------------------------------------------------------------------------------------------------
# the per-step normalisation on its own
# ----------------------------------------------------------------------------------------------------------


def test_masked_moments_against_numpy():
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    mask = torch.rand(5, 3) > 0.4
    mask[0] = True
    mean, var, count = masked_moments(x, mask[..., None], (0,))
    xn, mn = x.numpy(), mask.numpy()
    for t in range(3):
        sel = xn[mn[:, t], t]
        assert count[t] == sel.shape[0]
        close(mean[t], torch.from_numpy(sel.mean(0)))
        close(var[t], torch.from_numpy(sel.var(0)))


def test_step_batch_norm_cumulative_average():
    bn = StepBatchNorm(3, 2, momentum=None).double()
    xs = [torch.randn(4, 3, dtype=torch.float64) for _ in range(3)]
    for x in xs:
        bn.step(x, 1)
    close(bn.running_mean[1], torch.stack([x.mean(0) for x in xs]).mean(0))
    close(bn.running_var[1], torch.stack([x.var(0) for x in xs]).mean(0))
    assert bn.num_batches_tracked.tolist() == [0, 3]
    bn.step(xs[0][:1], 0)  # one row: no variance, no update
    assert bn.num_batches_tracked.tolist() == [0, 3]


# ----------------------------------------------------------------------------------------------------------
# oneDNN kernels (float32 on CPU) against torch.mm
# ----------------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------------


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="variant"):
        BNLSTMCell(I, H, L, variant="both")
    with pytest.raises(ValueError, match="normalization"):
        BNLSTMCell(I, H, L, normalization="batch")
    with pytest.raises(ValueError, match=r"normalization.*input_only"):
        BNLSTMCell(I, H, L, normalization="sequence")
    with pytest.raises(ValueError, match="max_length"):
        BNLSTMCell(I, H, 0)
    with pytest.raises(ValueError, match="momentum"):
        BNLSTMCell(I, H, L, momentum=1.5)
    with pytest.raises(ValueError, match="num_layers"):
        bn_lstm(I, H, L, num_layers=0)
    cell = BNLSTMCell(I, H, L)
    state = cell.initial_state(2)
    with pytest.raises(ValueError, match=r"x_t: expected shape \(B, 3\)"):
        cell(torch.zeros(2, 5), state)
    with pytest.raises(ValueError, match="state"):
        cell(torch.zeros(2, I), cell.initial_state(3))
    with pytest.raises(ValueError, match="t: expected an integer >= 0"):
        cell(torch.zeros(2, I), state, t=-1)
    with pytest.raises(ValueError, match="mask"):
        cell(torch.zeros(2, I), state, mask=torch.ones(2))
    with pytest.raises(ValueError, match=r"x: expected shape \(B, T, 3\)"):
        bn_lstm(I, H, L)(torch.zeros(2, 5, 4))


def test_model_contract_flat_state_and_step():
    model = make("full").eval()
    S = model.state_size
    assert S == 2 * H
    vec = torch.randn(3, S, dtype=torch.float64)
    state = model.unflatten_state(vec)
    close(model.flatten_state(state), vec)
    x = torch.randn(3, 5, I, dtype=torch.float64)
    y, _, traj = model(x, state=state, return_states=True)
    y_t, s_t = model.step(x[:, 2], model.unflatten_state(traj[:, 1]), t=2)
    close(y_t, y[:, 2])
    close(model.flatten_state(s_t), traj[:, 2])
