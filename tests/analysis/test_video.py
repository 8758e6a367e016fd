"""Video analysis: ridge regression against NumPy least squares, R², the location probe on a model whose
layers hold the digit's centre of mass (decodable) and noise (not), and the frame strip."""

from typing import NamedTuple

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import mnemonet
from mnemonet.analysis.video import location_probe, plot_frame_strip, predict_video, r2_score, ridge_fit, ridge_predict
from mnemonet.tasks.moving_digits import MovingDigitsTask


def test_ridge_fit_matches_numpy_least_squares():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(50, 4, generator=g, dtype=torch.float64)
    noise = 0.01 * torch.randn(50, 2, generator=g, dtype=torch.float64)
    Y = X @ torch.randn(4, 2, generator=g, dtype=torch.float64) + 0.3 + noise
    W = ridge_fit(X, Y, ridge=1e-10)
    A = np.concatenate([X.numpy(), np.ones((50, 1))], axis=1)
    ref, *_ = np.linalg.lstsq(A, Y.numpy(), rcond=None)
    np.testing.assert_allclose(W.numpy(), ref, atol=1e-7)
    assert r2_score(ridge_predict(W, X), Y) > 0.99
    assert r2_score(Y.mean(0).expand_as(Y), Y) == pytest.approx(0.0)


class H(NamedTuple):
    h: Tensor


class CentreModel(nn.Module):
    """Layer 0 holds the centre of mass of the frame read (a probe can decode it), layer 1 noise."""

    def __init__(self, side: int) -> None:
        super().__init__()
        self.side = side
        grid = torch.arange(side, dtype=torch.float32)
        self.rows, self.cols = grid[:, None].expand(side, side).reshape(-1), grid[None].expand(side, side).reshape(-1)

    def initial_state(self, batch_size, device=None, dtype=None):
        return (H(torch.zeros(batch_size, 2)), H(torch.zeros(batch_size, 2)))

    def step(self, x_t, state, t=0):
        pix = x_t[:, : self.side**2]
        mass = pix.sum(1, keepdim=True).clamp_min(1e-6)
        com = torch.cat([(pix * self.rows).sum(1, keepdim=True), (pix * self.cols).sum(1, keepdim=True)], 1) / mass
        noise = torch.randn(x_t.shape[0], 2, generator=self.noise)
        return None, (H(com), H(noise))


def test_location_probe_decodes_the_layer_that_holds_the_position():
    task = MovingDigitsTask(canvas=24, num_digits=1, frames=5, observed=4)
    model = CentreModel(24)
    model.noise = torch.Generator().manual_seed(1)
    out = location_probe(model, task, torch.Generator().manual_seed(0), batches=2, batch_size=16)
    assert len(out) == 2
    assert out[0]["r2"] > 0.9 and out[0]["cell_accuracy"] > 0.8
    assert out[1]["r2"] < 0.2 and out[1]["cell_accuracy"] < 0.5


def test_frame_strip_and_prediction(tmp_path):
    task = MovingDigitsTask(canvas=16, num_digits=1, frames=5, observed=2)
    torch.manual_seed(0)
    model = mnemonet.build("frame_predictor", input_size=257, output_size=256, core="lstm", embed_size=8,
                           hidden_size=8)  # fmt: skip
    frames, predicted = predict_video(model, task, torch.Generator().manual_seed(0))
    assert frames.shape == (5, 16, 16) and predicted.shape == (4, 16, 16)
    fig = plot_frame_strip(frames, predicted, 2, "strip", tmp_path / "strip.png")
    assert (tmp_path / "strip.png").stat().st_size > 1000 and len(fig.axes) == 10
