"""A short training run of the reference model on a toy memory task lowers its loss clearly.

Echo task (delay k = 2, V = 4 symbols, one-hot):

    t:       0   1   2   3   4   ...
    input:   a   b   c   d   e
    target:  -   -   a   b   c       (- = masked out)

Chance loss is log V ≈ 1.386; a net that remembers the last k inputs drives it towards 0.
"""

from __future__ import annotations

import numpy as np
import pytest

from mnemonet.reference import SGD, AdaGrad, RMSProp, SequenceModel, train_step

V, K, T = 4, 2, 10


def echo_batch(rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    symbols = rng.integers(0, V, size=(batch, T))
    x = np.eye(V)[symbols]  # (B, T, V) one-hot
    targets = np.zeros_like(symbols)
    targets[:, K:] = symbols[:, :-K]
    mask = np.zeros((batch, T), dtype=bool)
    mask[:, K:] = True
    return x, targets, mask


@pytest.mark.parametrize(
    ("cell", "make_opt"),
    [
        ("rnn", lambda: RMSProp(0.01)),
        ("lstm", lambda: RMSProp(0.01)),
        ("gru", lambda: RMSProp(0.01)),
        ("lstm", lambda: AdaGrad(0.1)),
        ("gru", lambda: SGD(0.5, momentum=0.9)),
    ],
    ids=["rnn-rmsprop", "lstm-rmsprop", "gru-rmsprop", "lstm-adagrad", "gru-sgd"],
)
def test_echo_task_loss_drops(cell: str, make_opt) -> None:
    rng = np.random.default_rng(0)
    model = SequenceModel(cell, V, 16, V, rng=rng)
    opt = make_opt()
    x_eval, t_eval, m_eval = echo_batch(np.random.default_rng(123), 64)
    before = model.loss_and_grads(x_eval, t_eval, m_eval)[0]
    norms = []
    for _ in range(150):
        x, t, m = echo_batch(rng, 16)
        _, norm = train_step(model, opt, x, t, m, max_norm=5.0)
        norms.append(norm)
    after = model.loss_and_grads(x_eval, t_eval, m_eval)[0]
    accuracy = (model.predict(x_eval) == t_eval)[m_eval].mean()
    assert abs(before - np.log(V)) < 0.2  # starts near chance
    assert after < 0.1 * before
    assert accuracy > 0.95
    assert all(np.isfinite(norms))


def test_train_step_without_clipping_reports_the_norm() -> None:
    rng = np.random.default_rng(1)
    model = SequenceModel("rnn", V, 8, V, rng=rng)
    x, t, m = echo_batch(rng, 4)
    _, grads = model.loss_and_grads(x, t, m)
    expected = float(np.sqrt(sum(np.sum(g**2) for g in grads.values())))
    w_before = model.params["out.weight"].copy()
    loss, norm = train_step(model, SGD(0.1), x, t, m)
    assert np.isclose(norm, expected, rtol=1e-14)
    assert not np.array_equal(model.params["out.weight"], w_before)
    assert model.loss_and_grads(x, t, m)[0] < loss
