"""DNC memory-access test helpers: a random access state and its leaves (shared by models/ and kernels/ tests)."""

import torch

from mnemonet.models.dnc.access import AccessState, LinkState

D = torch.float64
B, N, W, R = 3, 6, 4, 2


def random_state(hw=1, dtype=D):
    L = torch.rand(B, hw, N, N, dtype=dtype) / N * (1 - torch.eye(N, dtype=dtype))
    return AccessState(
        torch.randn(B, N, W, dtype=dtype),
        torch.rand(B, N, dtype=dtype),
        LinkState(L, torch.softmax(torch.randn(B, hw, N, dtype=dtype), -1) * 0.9),
        torch.softmax(torch.randn(B, R, N, dtype=dtype), -1),
        torch.softmax(torch.randn(B, hw, N, dtype=dtype), -1) * 0.8,
    )


def flat(state):
    return [state.memory, state.usage, state.link[0], state.link[-1], state.read_weights, state.write_weights]
