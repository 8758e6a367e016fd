"""The DNC's interface vector ξ_t: its layout, and its split into the memory's controls with the paper's nonlinearities.

Graves et al. (2016) emit one interface vector per step from the controller and split it into read keys
k^r, read strengths β^r = oneplus(β̂^r), write key k^w, write strength β^w = oneplus(β̂^w), erase vector
e = σ(ê), write vector v, free gates f = σ(f̂), allocation gate g^a = σ(ĝ^a), write gate g^w = σ(ĝ^w) and
read modes π = softmax(π̂). The options of Csordás & Schmidhuber (2019) add key masks σ(m̂) per head and
link sharpness s = oneplus(ŝ) per read head and direction.

Inside ξ the parts are grouped by nonlinearity (raw | oneplus | sigmoid | softmax) so one step applies four
activations instead of ten; the order inside each group follows the paper.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mnemonet._checks import check_tensor
from mnemonet.models.dnc.addressing import oneplus


class Interface(NamedTuple):
    """The memory controls of one step, after their nonlinearities (``Hw`` write heads, ``R`` read heads).

    Attributes:
        read_keys: k^r, `[B, R, W]`.
        read_strengths: β^r ≥ 1, `[B, R]`.
        write_keys: k^w, `[B, Hw, W]`.
        write_strengths: β^w ≥ 1, `[B, Hw]`.
        erase_vectors: e ∈ [0, 1], `[B, Hw, W]`.
        write_vectors: v, `[B, Hw, W]`.
        free_gates: f ∈ [0, 1], `[B, R]`.
        allocation_gates: g^a ∈ [0, 1], `[B, Hw]`.
        write_gates: g^w ∈ [0, 1], `[B, Hw]`.
        read_modes: π, `[B, R, 1 + 2 Hw]` distributions over (backward…, content, forward…).
        read_masks: key masks of the read heads `[B, R, W]`, or None without key masking.
        write_masks: key masks of the write heads `[B, Hw, W]`, or None.
        forward_sharpness: s^f ≥ 1, `[B, R]`, or None without link sharpness control.
        backward_sharpness: s^b ≥ 1, `[B, R]`, or None.
    """

    read_keys: Tensor
    read_strengths: Tensor
    write_keys: Tensor
    write_strengths: Tensor
    erase_vectors: Tensor
    write_vectors: Tensor
    free_gates: Tensor
    allocation_gates: Tensor
    write_gates: Tensor
    read_modes: Tensor
    read_masks: Tensor | None = None
    write_masks: Tensor | None = None
    forward_sharpness: Tensor | None = None
    backward_sharpness: Tensor | None = None


def interface_groups(
    word_size: int, num_reads: int, num_writes: int = 1, key_masking: bool = False, link_sharpness: bool = False
) -> tuple[int, int, int, int]:
    """Sizes of the four groups of ξ: (raw, oneplus, sigmoid, softmax)."""
    W, R, Hw = word_size, num_reads, num_writes
    raw = R * W + 2 * Hw * W  # read keys, write keys, write vectors
    plus = R + Hw + (2 * R if link_sharpness else 0)  # strengths, sharpness
    sig = Hw * W + R + 2 * Hw + ((R + Hw) * W if key_masking else 0)  # erase, free, gates, masks
    soft = R * (1 + 2 * Hw)  # read modes
    return raw, plus, sig, soft


def interface_size(
    word_size: int, num_reads: int, num_writes: int = 1, key_masking: bool = False, link_sharpness: bool = False
) -> int:
    """Length of ξ_t: R·W + 3·W + 5·R + 3 for the paper's single write head without options."""
    return sum(interface_groups(word_size, num_reads, num_writes, key_masking, link_sharpness))


STRENGTHS = ("oneplus", "softplus")
"""Maps of the raw key strengths β̂: the paper's oneplus (β ≥ 1) or deepmind/dnc's softplus (β > 0)."""


def split_interface(
    xi: Tensor,
    word_size: int,
    num_reads: int,
    num_writes: int = 1,
    key_masking: bool = False,
    link_sharpness: bool = False,
    strength: str = "oneplus",
) -> Interface:
    """Split ξ_t and apply the paper's nonlinearities (oneplus strengths, sigmoid gates, softmax modes).

    Args:
        xi: ξ_t, `[B, interface_size(...)]`.
        word_size, num_reads, num_writes: W, R, Hw.
        key_masking, link_sharpness: whether ξ carries the optional masks and sharpness parts.
        strength: the map of the key strengths, ``"oneplus"`` (the paper: β = 1 + log(1 + e^β̂)) or
            ``"softplus"`` (deepmind/dnc's ``CosineWeights``: β = log(1 + e^β̂)); link sharpness is always oneplus.

    Returns:
        The :class:`Interface` of this step.
    """
    W, R, Hw = word_size, num_reads, num_writes
    groups = interface_groups(W, R, Hw, key_masking, link_sharpness)
    check_tensor(xi, "xi", ("B", sum(groups)))
    B = xi.shape[0]
    raw, plus, sig, soft = torch.split(xi, groups, dim=-1)
    if strength == "oneplus":
        plus = oneplus(plus)
    elif strength == "softplus":  # key strengths softplus, sharpness (after them) oneplus
        plus = F.softplus(plus) + (torch.arange(plus.shape[-1], device=plus.device) >= R + Hw).to(plus.dtype)
    else:
        raise ValueError(f"strength: expected one of {STRENGTHS}, got {strength!r}")
    sig = torch.sigmoid(sig)
    modes = torch.softmax(soft.reshape(B, R, 1 + 2 * Hw), dim=-1)  # (B, R, 1 + 2Hw)

    read_keys, write_keys, write_vectors = torch.split(raw, [R * W, Hw * W, Hw * W], dim=-1)
    plus_parts = torch.split(plus, [R, Hw, 2 * R if link_sharpness else 0], dim=-1)
    mask_size = (R + Hw) * W if key_masking else 0
    erase, free, alloc_gate, write_gate, masks = torch.split(sig, [Hw * W, R, Hw, Hw, mask_size], dim=-1)
    read_masks = write_masks = forward_sharpness = backward_sharpness = None
    if key_masking:
        read_masks = masks[:, : R * W].reshape(B, R, W)  # (B, R, W)
        write_masks = masks[:, R * W :].reshape(B, Hw, W)  # (B, Hw, W)
    if link_sharpness:
        forward_sharpness, backward_sharpness = plus_parts[2][:, :R], plus_parts[2][:, R:]
    return Interface(
        read_keys=read_keys.reshape(B, R, W),  # (B, R, W)
        read_strengths=plus_parts[0],
        write_keys=write_keys.reshape(B, Hw, W),  # (B, Hw, W)
        write_strengths=plus_parts[1],
        erase_vectors=erase.reshape(B, Hw, W),  # (B, Hw, W)
        write_vectors=write_vectors.reshape(B, Hw, W),  # (B, Hw, W)
        free_gates=free,
        allocation_gates=alloc_gate,
        write_gates=write_gate,
        read_modes=modes,
        read_masks=read_masks,
        write_masks=write_masks,
        forward_sharpness=forward_sharpness,
        backward_sharpness=backward_sharpness,
    )
