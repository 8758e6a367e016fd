"""Several processes (GPUs or nodes) through ``torchrun``: process group, DDP wrapping, small collectives.

``torchrun --nproc_per_node N -m mnemonet train PRESET`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set. Each initialises the process group (``nccl`` on GPUs, ``gloo``
on CPU), builds the same model from the same seed, and wraps it in ``DistributedDataParallel``, which
averages gradients across ranks. Each rank draws its own batches (generator seeded with seed + rank);
evaluation batches are the same on every rank, so curriculum and early-stopping decisions agree.
``trainer.batch_size`` is per process (the effective batch is N times larger). Only rank 0 writes
the run folder, and logs its own training loss; resuming on several nodes needs the run folder on a
shared filesystem. Nothing here pickles: strings travel as byte tensors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """Rank, world size and local rank from the ``torchrun`` environment variables."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ValueError(f"WORLD_SIZE/RANK/LOCAL_RANK: expected integers in the environment ({err})") from None
    return DistInfo(rank, world, local)


def init_distributed(device_kind: str = "cpu") -> DistInfo:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1); a no-op otherwise.

    Args:
        device_kind: ``"cuda"`` selects the ``nccl`` backend, anything else ``gloo``.
    """
    info = env_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        if device_kind == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def shutdown() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def wrap(model: nn.Module, device: torch.device, find_unused_parameters: bool = False) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` when distributed, else unchanged."""
    if not active():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused_parameters)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_true(flag: bool, device: torch.device | None = None) -> bool:
    """True only if ``flag`` is true on every rank."""
    if not active():
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def broadcast_text(text: str, device: torch.device | None = None) -> str:
    """Rank 0's ``text`` on every rank (sent as a length then UTF-8 bytes, no pickle)."""
    if not active():
        return text
    data = text.encode("utf-8") if dist.get_rank() == 0 else b""
    size = torch.tensor([len(data)], dtype=torch.int64, device=device)
    dist.broadcast(size, 0)
    buf = torch.zeros(int(size.item()), dtype=torch.uint8, device=device)
    if dist.get_rank() == 0 and data:
        buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    dist.broadcast(buf, 0)
    return bytes(buf.cpu().tolist()).decode("utf-8")


def gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``tensor`` (same shape on all ranks), in rank order; ``[tensor]`` when not distributed."""
    if not active():
        return [tensor]
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return parts


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if active():
        dist.barrier()


__all__ = [
    "DistInfo", "active", "all_true", "barrier", "broadcast_text", "env_info", "gather", "init_distributed",
    "shutdown", "unwrap", "wrap",
]  # fmt: skip
