"""The DNC's memory access: one write then one read per step, composed from the pure functions of ``addressing``.

:func:`access_step` is the whole memory side of one DNC step as a pure function of the interface and the
previous :class:`AccessState` (Graves et al. 2016, Methods, in the paper's order: usage from free gates,
allocation, write weighting, erase and write, link and precedence, then read weightings and read vectors).
:class:`MemoryAccess` adds the only parameters: the projection of the controller output onto ξ_t. In the
paper's configuration (one write head, dense link, no options) and with kernels enabled it runs the same
step as one autograd node with a hand-written backward (``kernels.dnc_access.FusedAccessStep``, tested
against :func:`access_step`); otherwise it runs :func:`access_step`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from mnemonet import kernels
from mnemonet._checks import check_choice, check_positive
from mnemonet.kernels.dnc_access import FusedAccessStep
from mnemonet.models.dnc import addressing as A
from mnemonet.models.dnc.interface import STRENGTHS, Interface, interface_size, split_interface
from mnemonet.models.dnc.sparse_link import sparse_directional_weights, sparse_link


class LinkState(NamedTuple):
    """Dense temporal links: ``link`` L `[B, Hw, N, N]` and ``precedence`` p `[B, Hw, N]`."""

    link: Tensor
    precedence: Tensor


class SparseLinkState(NamedTuple):
    """Sparse temporal links, K entries per row: ``values`` and ``indices`` `[B, Hw, N, K]`, precedence p `[B, Hw, N]`.

    ``indices`` are column numbers stored in the state's float dtype (see ``sparse_link``).
    """

    values: Tensor
    indices: Tensor
    precedence: Tensor


class AccessState(NamedTuple):
    """The memory and its addressing state after a step.

    Attributes:
        memory: M_t, `[B, N, W]`.
        usage: u_t, `[B, N]`.
        link: :class:`LinkState` or :class:`SparseLinkState`.
        read_weights: w^r_t, `[B, R, N]`.
        write_weights: w^w_t, `[B, Hw, N]`.
    """

    memory: Tensor
    usage: Tensor
    link: LinkState | SparseLinkState
    read_weights: Tensor
    write_weights: Tensor


class AccessInfo(NamedTuple):
    """What one step did, for traces and memory maps (none of it is needed by the next step).

    Attributes:
        write_weights: w^w_t, `[B, Hw, N]`.
        read_weights: w^r_t, `[B, R, N]`.
        usage: u_t, `[B, N]` (the usage the allocation was computed from).
        allocation: a_t, `[B, Hw, N]`.
        allocation_gates: g^a_t, `[B, Hw]`.
        write_gates: g^w_t, `[B, Hw]`.
        free_gates: f_t, `[B, R]`.
        read_modes: π_t, `[B, R, 1 + 2 Hw]`.
    """

    write_weights: Tensor
    read_weights: Tensor
    usage: Tensor
    allocation: Tensor
    allocation_gates: Tensor
    write_gates: Tensor
    free_gates: Tensor
    read_modes: Tensor


def initial_access_state(
    batch_size: int,
    memory_size: int,
    word_size: int,
    num_reads: int,
    num_writes: int = 1,
    link_top_k: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> AccessState:
    """Empty memory: every tensor zero (sparse link columns 0 with value 0)."""
    B, N, W, R, Hw = batch_size, memory_size, word_size, num_reads, num_writes

    def z(*shape: int) -> Tensor:
        return torch.zeros(*shape, device=device, dtype=dtype)

    if link_top_k is None:
        link: LinkState | SparseLinkState = LinkState(z(B, Hw, N, N), z(B, Hw, N))
    else:
        K = min(link_top_k, N)
        link = SparseLinkState(z(B, Hw, N, K), z(B, Hw, N, K), z(B, Hw, N))
    return AccessState(z(B, N, W), z(B, N), link, z(B, R, N), z(B, Hw, N))


def access_step(
    iface: Interface,
    state: AccessState,
    deallocation: bool = False,
    usage_write_gradient: bool = True,
    outer_eps: bool = False,
) -> tuple[Tensor, AccessState, AccessInfo]:
    """One memory step: write with the interface's write heads, then read with its read heads.

    Equations (Graves et al. 2016, Methods): ψ_t from the free gates, u_t, a_t, c^w_t on M_{t−1}, w^w_t,
    M_t, L_t and p_t, f_t and b_t from w^r_{t−1}, c^r_t on M_t, w^r_t and r_t. Options come from the data:
    key masks and sharpness when the interface carries them, a sparse link when ``state.link`` is a
    :class:`SparseLinkState`.

    Args:
        iface: this step's controls (:func:`~mnemonet.models.dnc.interface.split_interface`).
        state: the previous access state.
        deallocation: also erase freed slots' content (Csordás & Schmidhuber 2019).
        usage_write_gradient: False stops the gradient from u_t into w^w_{t−1} (deepmind/dnc; see
            :func:`~mnemonet.models.dnc.addressing.usage`).
        outer_eps: deepmind/dnc's ε on the norm product of the cosine similarity.

    Returns:
        (read vectors r_t `[B, R, W]`, the new :class:`AccessState`, the step's :class:`AccessInfo`).
    """
    memory, prev_usage, link_state, prev_read, prev_write = state
    psi = A.retention(iface.free_gates, prev_read)  # ψ_t, (B, N)
    usage = A.usage(prev_usage, prev_write, psi, usage_write_gradient)  # u_t, (B, N)
    write_content = A.content_weights(
        memory, iface.write_keys, iface.write_strengths, iface.write_masks, outer_eps=outer_eps
    )
    alloc = A.write_allocations(usage, iface.allocation_gates * iface.write_gates)  # a_t, (B, Hw, N)
    write = A.write_weights(alloc, write_content, iface.allocation_gates, iface.write_gates)  # w^w_t
    memory = A.erase_and_write(
        memory, write, iface.erase_vectors, iface.write_vectors, psi if deallocation else None
    )  # M_t, (B, N, W)

    if isinstance(link_state, SparseLinkState):
        values, indices = sparse_link(link_state.values, link_state.indices, write, link_state.precedence)
        forward, backward = sparse_directional_weights(values, indices, prev_read)
        new_link: LinkState | SparseLinkState = SparseLinkState(
            values, indices, A.precedence(link_state.precedence, write)
        )
    else:
        L = A.link(link_state.link, write, link_state.precedence)  # L_t, (B, Hw, N, N)
        forward, backward = A.directional_weights(L, prev_read)  # (B, Hw, R, N) each
        new_link = LinkState(L, A.precedence(link_state.precedence, write))
    if iface.forward_sharpness is not None:
        forward = A.sharpen(forward, iface.forward_sharpness.unsqueeze(1))
        backward = A.sharpen(backward, iface.backward_sharpness.unsqueeze(1))

    read_content = A.content_weights(
        memory, iface.read_keys, iface.read_strengths, iface.read_masks, outer_eps=outer_eps
    )
    read = A.read_weights(iface.read_modes, read_content, forward, backward)  # w^r_t, (B, R, N)
    read_vectors = A.read_vectors(memory, read)  # r_t, (B, R, W)
    info = AccessInfo(
        write, read, usage, alloc, iface.allocation_gates, iface.write_gates, iface.free_gates, iface.read_modes
    )
    return read_vectors, AccessState(memory, usage, new_link, read, write), info


class MemoryAccess(nn.Module):
    """The DNC's memory with its interface projection ξ_t = W_ξ h_t (+ bias); everything else is parameter-free.

    Args:
        input_size: size of the controller output h_t.
        memory_size: N slots.
        word_size: W.
        num_reads: R read heads.
        num_writes: Hw write heads (the paper: 1).
        key_masking: masked content addressing (Csordás & Schmidhuber 2019).
        deallocation: freed slots lose their content (Csordás & Schmidhuber 2019).
        link_sharpness: sharpness control of forward/backward weightings (Csordás & Schmidhuber 2019).
        link_top_k: K, keep the K largest entries per row of the dense link update (memory N·K), or None for
            the dense N × N (see ``sparse_link``; exact for K ≥ N, not Rae et al. 2016's sparse link).
        usage_write_gradient: gradient from the usage into the previous write weights (the paper's equations:
            True; deepmind/dnc: False).
        outer_eps: deepmind/dnc's ε on the norm product of the cosine similarity (the paper: False).
        strength: key-strength map, ``"oneplus"`` (the paper) or ``"softplus"`` (deepmind/dnc).

    Only the paper's choices (the defaults) have a fused kernel; other choices run the readable equations.
    """

    def __init__(
        self,
        input_size: int,
        memory_size: int,
        word_size: int,
        num_reads: int,
        num_writes: int = 1,
        key_masking: bool = False,
        deallocation: bool = False,
        link_sharpness: bool = False,
        link_top_k: int | None = None,
        usage_write_gradient: bool = True,
        outer_eps: bool = False,
        strength: str = "oneplus",
    ) -> None:
        super().__init__()
        check_choice(strength, "strength", list(STRENGTHS))
        for value, name in [
            (input_size, "input_size"),
            (memory_size, "memory_size"),
            (word_size, "word_size"),
            (num_reads, "num_reads"),
            (num_writes, "num_writes"),
        ]:
            check_positive(value, name)
        if link_top_k is not None:
            check_positive(link_top_k, "link_top_k")
        self.input_size = input_size
        self.memory_size = memory_size
        self.word_size = word_size
        self.num_reads = num_reads
        self.num_writes = num_writes
        self.key_masking = key_masking
        self.deallocation = deallocation
        self.link_sharpness = link_sharpness
        self.link_top_k = link_top_k
        self.usage_write_gradient = usage_write_gradient
        self.outer_eps = outer_eps
        self.strength = strength
        self.interface = nn.Linear(
            input_size, interface_size(word_size, num_reads, num_writes, key_masking, link_sharpness)
        )

    def extra_repr(self) -> str:
        parts = [
            f"input_size={self.input_size}, memory_size={self.memory_size}, word_size={self.word_size}, "
            f"num_reads={self.num_reads}"
        ]
        if self.num_writes != 1:
            parts.append(f"num_writes={self.num_writes}")
        parts += [name for name in ("key_masking", "deallocation", "link_sharpness") if getattr(self, name)]
        if self.link_top_k is not None:
            parts.append(f"link_top_k={self.link_top_k}")
        if not self.usage_write_gradient:
            parts.append("usage_write_gradient=False")
        if self.outer_eps:
            parts.append("outer_eps=True")
        if self.strength != "oneplus":
            parts.append(f"strength={self.strength!r}")
        return ", ".join(parts)

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> AccessState:
        """Empty memory for ``batch_size`` sequences."""
        return initial_access_state(
            batch_size,
            self.memory_size,
            self.word_size,
            self.num_reads,
            self.num_writes,
            self.link_top_k,
            device=device or self.interface.weight.device,
            dtype=dtype or self.interface.weight.dtype,
        )

    def split(self, h: Tensor) -> Interface:
        """ξ_t = W_ξ h_t split into the step's controls: `[B, input_size]` -> :class:`Interface`."""
        return self._split(self.interface(h))

    def _split(self, xi: Tensor) -> Interface:
        return split_interface(
            xi, self.word_size, self.num_reads, self.num_writes, self.key_masking, self.link_sharpness, self.strength
        )

    @property
    def uses_fused_step(self) -> bool:
        """Whether steps may run as one fused autograd node (the paper's configuration; ``kernels.dnc_access``)."""
        return (
            self.num_writes == 1
            and self.link_top_k is None
            and not (self.key_masking or self.deallocation or self.link_sharpness)
            and self.usage_write_gradient
            and not self.outer_eps
            and self.strength == "oneplus"
        )

    def forward(
        self,
        h: Tensor,
        state: AccessState,
        with_info: bool = False,
        projection: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> tuple[Tensor, AccessState, AccessInfo | None]:
        """One memory step driven by the controller output ``h`` `[B, input_size]`.

        Args:
            h: controller output h_t.
            state: previous :class:`AccessState`.
            with_info: also return the step's :class:`AccessInfo` (else None).
            projection: computes ξ_t as ``projection(h, bias)`` with this module's weight (a
                ``kernels.time_shared.TimeShared`` over it, from ``DNCCell.prepare``), or None for ``self.interface``.

        Returns:
            (read vectors `[B, R, W]`, new state, step info or None).
        """
        xi = self.interface(h) if projection is None else projection(h, self.interface.bias)
        if not (kernels.is_enabled() and self.uses_fused_step):
            r, new, info = access_step(
                self._split(xi), state, self.deallocation, self.usage_write_gradient, self.outer_eps
            )
            return r, new, info if with_info else None
        link = state.link
        r, M, u, L, p, wr, ww, alloc = FusedAccessStep.apply(
            xi, state.memory, state.usage, link.link, link.precedence, state.read_weights, state.write_weights,
            self.num_reads, self.word_size,
        )  # fmt: skip
        new = AccessState(M, u, LinkState(L, p), wr, ww)
        info = None
        if with_info:
            iface = split_interface(xi.detach(), self.word_size, self.num_reads)
            info = AccessInfo(
                new.write_weights, new.read_weights, new.usage, alloc, iface.allocation_gates,
                iface.write_gates, iface.free_gates, iface.read_modes,
            )  # fmt: skip
        return r, new, info
