"""Optimisers against their update equations (hand-computed) and torch.optim; clipping by global norm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mnemonet.reference import SGD, AdaGrad, RMSProp, clip_by_global_norm, global_norm

torch.set_num_threads(1)


def run(opt, p0: list[float], grads: list[list[float]]) -> np.ndarray:
    params = {"w": np.array(p0, dtype=np.float64)}
    for g in grads:
        opt.step(params, {"w": np.array(g, dtype=np.float64)})
    return params["w"]


def test_sgd_hand_computed() -> None:
    # w ← w - η g with η = 0.1
    np.testing.assert_allclose(run(SGD(0.1), [1.0, -2.0], [[0.5, 1.0]]), [0.95, -2.1], rtol=1e-15)
    # momentum 0.9: v1 = 1, w1 = 1 - 0.1 = 0.9; v2 = 0.9·1 + 2 = 2.9, w2 = 0.9 - 0.29 = 0.61
    np.testing.assert_allclose(run(SGD(0.1, momentum=0.9), [1.0], [[1.0], [2.0]]), [0.61], rtol=1e-15)


def test_adagrad_hand_computed() -> None:
    # G1 = 4, w1 = 1 - 0.1·2/√4 = 0.9; G2 = 5, w2 = 0.9 - 0.1·1/√5
    w = run(AdaGrad(lr=0.1, eps=1e-10), [1.0], [[2.0], [1.0]])
    np.testing.assert_allclose(w, [0.9 - 0.1 / math.sqrt(5.0)], rtol=1e-10)


def test_rmsprop_hand_computed() -> None:
    # α = 0.9: r1 = 0.1·4 = 0.4, w1 = 1 - 0.01·2/√0.4; r2 = 0.9·0.4 + 0.1·1 = 0.46, w2 = w1 - 0.01·1/√0.46
    w1 = 1.0 - 0.01 * 2.0 / math.sqrt(0.4)
    w = run(RMSProp(lr=0.01, alpha=0.9, eps=1e-12), [1.0], [[2.0], [1.0]])
    np.testing.assert_allclose(w, [w1 - 0.01 / math.sqrt(0.46)], rtol=1e-10)
    # momentum 0.5: b1 = 2/√0.4, b2 = 0.5·b1 + 1/√0.46
    b1 = 2.0 / math.sqrt(0.4)
    b2 = 0.5 * b1 + 1.0 / math.sqrt(0.46)
    w = run(RMSProp(lr=0.01, alpha=0.9, eps=1e-12, momentum=0.5), [1.0], [[2.0], [1.0]])
    np.testing.assert_allclose(w, [1.0 - 0.01 * b1 - 0.01 * b2], rtol=1e-10)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: SGD(0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        (lambda: SGD(0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
        (lambda: AdaGrad(0.1), lambda p: torch.optim.Adagrad(p, lr=0.1)),
        (lambda: RMSProp(0.01, alpha=0.9), lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9)),
        (
            lambda: RMSProp(0.01, alpha=0.95, momentum=0.5),
            lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.95, momentum=0.5),
        ),
    ],
    ids=["sgd", "sgd-momentum", "adagrad", "rmsprop", "rmsprop-momentum"],
)
def test_matches_torch_optim(ours, theirs) -> None:
    rng = np.random.default_rng(0)
    params = {"a": rng.normal(size=(3, 2)), "b": rng.normal(size=4)}
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt, topt = ours(), theirs(list(tparams.values()))
    for _ in range(6):
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        opt.step(params, grads)
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k])
        topt.step()
    for k in params:
        np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), rtol=1e-12, atol=1e-14)


def test_step_updates_in_place_and_validates() -> None:
    w = np.ones(3)
    params = {"w": w}
    RMSProp().step(params, {"w": np.ones(3)})
    assert params["w"] is w and np.all(w < 1.0)
    with pytest.raises(ValueError, match=r"grads: expected keys \['w'\]"):
        SGD(0.1).step(params, {"v": np.ones(3)})
    with pytest.raises(ValueError, match=r"grads\['w'\]: expected shape \(3\)"):
        SGD(0.1).step(params, {"w": np.ones(2)})
    with pytest.raises(ValueError, match=r"params\['w'\]: expected a float64 array"):
        SGD(0.1).step({"w": np.ones(3, dtype=np.float32)}, {"w": np.ones(3)})
    opt = AdaGrad()
    opt.step({"w": np.ones(3)}, {"w": np.ones(3)})
    with pytest.raises(ValueError, match=r"params\['w'\]: expected shape \(3,\) as on earlier steps"):
        opt.step({"w": np.ones(2)}, {"w": np.ones(2)})
    for bad in (lambda: SGD(0.0), lambda: SGD(-1.0), lambda: AdaGrad(float("nan"))):
        with pytest.raises(ValueError, match="lr: expected a real number"):
            bad()
    with pytest.raises(ValueError, match="momentum: expected a real number in"):
        SGD(0.1, momentum=1.5)
    with pytest.raises(ValueError, match="alpha: expected a real number in"):
        RMSProp(alpha=-0.1)
    with pytest.raises(ValueError, match="eps: expected a real number in"):
        AdaGrad(eps=0.0)


def test_clip_hand_computed() -> None:
    """‖(3, 4)‖ = 5 > Δmax = 1: Δw ← Δw · 1/5 = (0.6, 0.8); inputs are not modified."""
    grads = {"a": np.array([3.0]), "b": np.array([[4.0]])}
    clipped, norm = clip_by_global_norm(grads, 1.0)
    assert norm == 5.0
    np.testing.assert_allclose(clipped["a"], [0.6], rtol=1e-15)
    np.testing.assert_allclose(clipped["b"], [[0.8]], rtol=1e-15)
    assert grads["a"][0] == 3.0


def test_clip_keeps_small_gradients_and_caps_large_ones() -> None:
    rng = np.random.default_rng(0)
    grads = {"a": rng.normal(size=(4, 3)), "b": rng.normal(size=5)}
    norm = global_norm(grads)
    assert np.isclose(norm, np.linalg.norm(np.concatenate([g.ravel() for g in grads.values()])), rtol=1e-14)
    same, _ = clip_by_global_norm(grads, norm * 1.01)
    for k in grads:
        np.testing.assert_array_equal(same[k], grads[k])
    small, n = clip_by_global_norm(grads, norm / 3)
    assert n == norm
    assert np.isclose(global_norm(small), norm / 3, rtol=1e-14)
    for k in grads:  # same direction: every entry scaled by the same factor
        np.testing.assert_allclose(small[k], grads[k] / 3, rtol=1e-14)
    with pytest.raises(ValueError, match="max_norm: expected a real number"):
        clip_by_global_norm(grads, 0.0)
    with pytest.raises(ValueError, match="grads: expected a dict"):
        global_norm([np.ones(2)])  # type: ignore[arg-type]
