"""F(h, I), the speed q and batched Jacobians, through the model contract only."""

import pytest
import torch
from analysis_toy_models import HState, PairCell, linear_model, tanh_model
from torch import Tensor

from mnemonet.analysis.dynamics import broadcast_inputs, jacobians, speed, transition
from mnemonet.models.base import Cell
from mnemonet.models.recurrent import Recurrent

D64 = torch.float64


def _reference_jacobians(model, h: Tensor, x: Tensor) -> Tensor:
    """Plain loop: one autograd Jacobian per state."""
    out = []
    for k in range(h.shape[0]):
        out.append(torch.autograd.functional.jacobian(lambda v, k=k: transition(model, v[None], x[k : k + 1])[0], h[k]))
    return torch.stack(out)


def test_transition_and_speed_of_a_linear_model():
    A = torch.tensor([[0.5, 0.2], [-0.1, 0.7]], dtype=D64)
    B = torch.tensor([[1.0], [2.0]], dtype=D64)
    model = linear_model(A, B)
    h = torch.tensor([[1.0, 0.0], [0.5, -1.0], [0.0, 0.0]], dtype=D64)
    x = torch.tensor([0.3], dtype=D64)
    want = h @ A.T + x @ B.T
    torch.testing.assert_close(transition(model, h, x), want)
    torch.testing.assert_close(speed(model, h, x), 0.5 * ((want - h) ** 2).sum(-1))
    # one input per state
    xs = torch.tensor([[0.0], [1.0], [-1.0]], dtype=D64)
    torch.testing.assert_close(transition(model, h, xs), h @ A.T + xs @ B.T)


def test_jacobians_of_known_systems():
    A = torch.tensor([[0.5, 0.2], [-0.1, 0.7]], dtype=D64)
    h = torch.randn(4, 2, dtype=D64)
    J = jacobians(linear_model(A), h, torch.zeros(1, dtype=D64))
    torch.testing.assert_close(J, A.expand(4, 2, 2))
    # tanh: dF/dh = diag(1 - F²) W
    W = torch.tensor([[1.5, -0.4], [0.3, 0.9]], dtype=D64)
    model = tanh_model(W)
    F = transition(model, h, torch.zeros(1, dtype=D64))
    want = (1 - F**2)[:, :, None] * W
    torch.testing.assert_close(jacobians(model, h, torch.zeros(1, dtype=D64)), want)


def test_jacobians_of_a_nested_state_match_a_plain_loop():
    model = Recurrent(PairCell())
    assert model.state_size == 4
    h = torch.randn(5, 4, dtype=D64)
    x = torch.randn(5, 2, dtype=D64)
    torch.testing.assert_close(jacobians(model, h, x), _reference_jacobians(model, h, x))


class _BranchyCell(Cell):
    """Data-dependent control flow (cannot be vmapped): h ← tanh(W h) if Σh > 0 else 0.5 h."""

    def __init__(self):
        super().__init__()
        self.W = torch.nn.Parameter(torch.tensor([[0.9, -0.5], [0.4, 1.1]], dtype=D64))
        self.input_size, self.output_size = 1, 2

    def initial_state(self, batch_size, device=None, dtype=None):
        return HState(torch.zeros(batch_size, 2, dtype=dtype or D64))

    def forward(self, x_t, state, t=0, mask=None):
        rows = [torch.tanh(h @ self.W.T) if bool(h.sum() > 0) else 0.5 * h for h in state.h]
        h = torch.stack(rows)
        return h, HState(h)


def test_jacobians_fall_back_when_the_step_cannot_be_vmapped():
    model = Recurrent(_BranchyCell())
    h = torch.tensor([[1.0, 0.5], [-1.0, -0.2], [0.3, -0.1]], dtype=D64)
    x = torch.zeros(3, 1, dtype=D64)
    with pytest.raises(RuntimeError):
        torch.func.vmap(torch.func.jacrev(lambda v, u: transition(model, v[None], u[None])[0]))(h, x)
    torch.testing.assert_close(jacobians(model, h, x), _reference_jacobians(model, h, x))


def test_the_map_is_differentiable_for_gradcheck():
    model = tanh_model(torch.tensor([[1.2, -0.3], [0.5, 0.8]], dtype=D64))
    x = torch.zeros(1, dtype=D64)
    h = torch.randn(3, 2, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: speed(model, v, x), (h,))


@pytest.mark.parametrize("bad", [torch.zeros(3), torch.zeros(2, 1), torch.zeros(1, 1, 1)])
def test_bad_inputs_raise(bad):
    model = linear_model(torch.eye(2, dtype=D64))
    with pytest.raises(ValueError, match="inputs"):
        transition(model, torch.zeros(3, 2, dtype=D64), bad.to(D64))
    with pytest.raises(ValueError, match="states"):
        transition(model, torch.zeros(3, 5, dtype=D64), torch.zeros(1, dtype=D64))
    assert broadcast_inputs(model, torch.zeros(1, dtype=D64), 4).shape == (4, 1)
