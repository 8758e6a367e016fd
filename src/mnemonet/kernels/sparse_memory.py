"""The SAM memory over a whole sequence, updated in place: O(K·W) saved and O(K·W) backward work per step.

Sparse Access Memory (Rae et al. 2016) writes at most K_w = R·K + 1 rows of M per step and reads R·K rows.
Written out of place, every step would copy the N × W memory (``models.dnc.sparse.FunctionalMemory``, the
readable path); autograd of the copies also makes the backward pass dense. The paper instead keeps one memory,
modifies it in place and back-propagates through the sparse modifications only (its section 3.5). This module
does that for one sequence:

- one buffer ``mem`` `[B, N, W]` changes in place: each write erases the least recently used row and
  adds w^W a^T at its K_w rows (``index_put_``), each read gathers R·K rows;
- the backward pass keeps one dense gradient buffer dL/dM `[B, N, W]` and walks it back in time: a read adds
  its rows' gradient there, a write reads the gradient of its rows and then zeroes the erased row
  (dL/dM_{t−1} = dL/dM_t outside the erased row). Nothing needs the old memory values, so the forward saves
  only indices, weights and the add vector: O(K_w + W) per write, O(R·K) per read.

The nodes are chained by a 0-dim token (open → write_1 → read_1 → write_2 → …), so autograd runs their backward
exactly in reverse order; each node's forward position tells the buffer when a new backward pass starts (a node
at or after the position of the last one run), so ``retain_graph`` and repeated ``autograd.grad`` calls work.
Tested against the out-of-place equations in tests/kernels/test_sparse_memory.py.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function


class SparseMemoryTape:
    """One sequence's memory, written in place, and its gradient buffer for the backward pass.

    Use: ``tape, token = SparseMemoryTape.open(M_0)``, then per step ``token = tape.write(token, ...)``,
    a scan of ``tape.current()``, ``rows, token = tape.rows(token, idx)``; finally ``M_T = tape.close(token)``.
    """

    def __init__(self, memory: Tensor) -> None:
        self.mem = memory.detach().clone()  # M, (B, N, W), changed in place
        self.norms = row_norms(self.mem)  # |M[i]|_ε of every row, (B, N), updated at the written rows
        self.shape, self.dtype, self.device = memory.shape, memory.dtype, memory.device
        self.grad: Tensor | None = None  # dL/dM_t during a backward pass, (B, N, W)
        self.cursor: int | None = None  # position of the last node whose backward ran
        self.position = 0
        self.batch = torch.arange(memory.shape[0], device=memory.device)  # (B,)

    @classmethod
    def open(cls, memory: Tensor) -> tuple[SparseMemoryTape, Tensor]:
        """A tape holding a copy of M_0 `[B, N, W]` and the first token (carries M_0's gradient)."""
        tape = cls(memory)
        return tape, _Open.apply(memory, tape)

    def next_position(self) -> int:
        self.position += 1
        return self.position

    def grad_at(self, position: int) -> Tensor:
        """The gradient buffer for the node at ``position``, zeroed when a new backward pass begins."""
        if self.grad is None or self.cursor is None or position >= self.cursor:
            self.grad = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
        self.cursor = position
        return self.grad

    def write(self, token: Tensor, lru: Tensor, indices: Tensor, values: Tensor, add: Tensor) -> Tensor:
        """M_t = (1 − I^U 1^T) ⊙ M_{t−1} + w^W a^T in place (see ``sparse.write_memory``); returns the next token."""
        return _Write.apply(token, lru, indices, values, add, self)

    def rows(self, token: Tensor, indices: Tensor) -> tuple[Tensor, Tensor]:
        """M_t[indices] `[B, H, K, W]` for indices `[B, H, K]`, and the next token."""
        return _Read.apply(token, indices, self)

    def current(self) -> Tensor:
        """M_t as it is now, `[B, N, W]`, for scans without gradient (content lookup, nearest neighbours)."""
        return self.mem

    def close(self, token: Tensor) -> Tensor:
        """M_T `[B, N, W]`: the buffer itself (the tape is finished)."""
        return _Close.apply(token, self)


def row_norms(rows: Tensor, eps: float = 1e-6) -> Tensor:
    """|x|_ε = sqrt(|x|² + ε) over the last axis (the norm of ``addressing.cosine_similarity``)."""
    return torch.sqrt(torch.linalg.vector_norm(rows, dim=-1).square() + eps)


def _token_grad(tape: SparseMemoryTape) -> Tensor:
    return torch.zeros((), dtype=tape.dtype, device=tape.device)


class _Open(Function):
    @staticmethod
    def forward(ctx, memory: Tensor, tape: SparseMemoryTape) -> Tensor:
        ctx.tape, ctx.position = tape, 0
        return memory.new_zeros(())

    @staticmethod
    def backward(ctx, _g: Tensor):
        tape = ctx.tape
        grad = tape.grad_at(ctx.position)  # dL/dM_0
        tape.grad, tape.cursor = None, None
        return grad, None


class _Write(Function):
    @staticmethod
    def forward(ctx, token, lru, indices, values, add, tape):
        tape.mem[tape.batch, lru] = 0.0  # erase the least recently used row
        tape.mem.index_put_(
            (tape.batch.unsqueeze(1), indices), values.unsqueeze(-1) * add.unsqueeze(1), accumulate=True
        )  # + w^W a^T at the K_w written rows, (B, K_w, W)
        changed = (tape.batch.unsqueeze(1), torch.cat([lru.unsqueeze(1), indices], 1))  # (B, 1 + K_w) rows
        tape.norms[changed] = row_norms(tape.mem[changed])
        ctx.tape, ctx.position = tape, tape.next_position()
        ctx.save_for_backward(lru, indices, values, add)
        return token.new_zeros(())

    @staticmethod
    def backward(ctx, _g):
        tape = ctx.tape
        lru, indices, values, add = ctx.saved_tensors
        grad = tape.grad_at(ctx.position)  # dL/dM_t
        g_rows = grad[tape.batch.unsqueeze(1), indices]  # (B, K_w, W)
        d_values = (g_rows * add.unsqueeze(1)).sum(-1)  # (B, K_w)
        d_add = (values.unsqueeze(-1) * g_rows).sum(1)  # (B, W)
        grad[tape.batch, lru] = 0.0  # dL/dM_{t−1}: the erased row does not reach M_t
        return _token_grad(tape), None, None, d_values, d_add, None


class _Read(Function):
    @staticmethod
    def forward(ctx, token, indices, tape):
        ctx.tape, ctx.position = tape, tape.next_position()
        ctx.save_for_backward(indices)
        B = indices.shape[0]
        rows = tape.mem[tape.batch.view(B, 1, 1), indices]  # (B, H, K, W)
        return rows, token.new_zeros(())

    @staticmethod
    def backward(ctx, g_rows, _g):
        tape = ctx.tape
        (indices,) = ctx.saved_tensors
        B = indices.shape[0]
        grad = tape.grad_at(ctx.position)
        grad.index_put_((tape.batch.view(B, 1, 1), indices), g_rows, accumulate=True)
        return _token_grad(tape), None, None


class _Close(Function):
    @staticmethod
    def forward(ctx, token, tape):
        ctx.tape, ctx.position = tape, tape.next_position()
        memory, tape.mem, tape.norms = tape.mem, None, None
        return memory

    @staticmethod
    def backward(ctx, g_memory):
        tape = ctx.tape
        tape.grad_at(ctx.position).add_(g_memory)
        return _token_grad(tape), None
