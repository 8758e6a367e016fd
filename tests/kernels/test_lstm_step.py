"""The fused LSTM step (``kernels.lstm_step``) and the once-per-sequence weight gradient (``kernels.time_shared``)."""

import torch

from mnemonet.kernels.lstm_step import LSTMStep
from mnemonet.kernels.time_shared import TimeShared


def test_gradcheck_lstm_step_and_time_shared_weight():
    D = torch.float64
    B, H, RW = 3, 4, 6
    pre = torch.randn(B, 4 * H, dtype=D, requires_grad=True)
    r = torch.randn(B, 2, 3, dtype=D, requires_grad=True)
    h, c = torch.randn(B, H, dtype=D, requires_grad=True), torch.randn(B, H, dtype=D, requires_grad=True)
    w = torch.randn(4 * H, RW + H, dtype=D, requires_grad=True)

    def two_steps(pre, r, h, c, w):
        ts = TimeShared(w)
        h1, c1 = LSTMStep.apply(pre, r, h, c, ts.weight, ts.record)
        h2, c2 = LSTMStep.apply(pre * 0.5, r * 2, h1, c1, ts.weight, ts.record)
        return h2, c2, ts(torch.cat([h1, r.reshape(B, -1)], 1), pre)  # a third use of the same weight

    assert torch.autograd.gradcheck(two_steps, (pre, r, h, c, w))
