"""torchrun / DistributedDataParallel support: gloo on CPU, nccl on CUDA."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 for a single process).
        world_size: number of processes.
        local_rank: rank on this machine (picks the CUDA device).
        device: the device this process trains on.
        backend: ``"gloo"``, ``"nccl"`` or ``""`` when not distributed.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str = ""

    @property
    def distributed(self) -> bool:
        """Returns True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Returns True on rank 0 (the process that logs, validates and writes files)."""
        return self.rank == 0


def setup() -> DistInfo:
    """Returns this process's :class:`DistInfo`, joining the process group under torchrun.

    torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them the run is a single
    process on CUDA when available, else CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world <= 1:
        return DistInfo(device=device)
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, backend)


def cleanup(info: DistInfo) -> None:
    """Leaves the process group if this process joined one."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def shard(items: Sequence[int], rank: int, world_size: int) -> list[int]:
    """Returns this rank's share of ``items`` (every ``world_size``-th, from ``rank``).

    Shares are disjoint and cover ``items``, like ``DistributedSampler`` without shuffling.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    return list(items[rank::world_size])


def barrier(info: DistInfo) -> None:
    """Waits for every rank (no-op for a single process)."""
    if info.distributed:
        dist.barrier()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copies rank 0's buffers (BatchNorm running statistics) into every rank's ``module``.

    DDP keeps parameters in step through its gradient all-reduce, but the running statistics
    updated by the last forward drift apart between ranks; this makes every rank hold rank 0's
    statistics before a checkpoint is saved. Parameters are left alone on purpose, so that
    :func:`parameter_digest` can show DDP itself kept them identical.
    """
    if not info.distributed:
        return
    with torch.no_grad():
        for tensor in module.buffers():
            dist.broadcast(tensor, src=0)


def all_reduce_sum(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Returns the sum of ``x`` over ranks (``x`` itself for a single process)."""
    if info.distributed:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def parameter_digest(module: torch.nn.Module) -> str:
    """Returns the SHA-256 hex digest of ``module``'s parameters (names, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.named_parameters()):
        data = tensor.detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(data.shape)).encode())
        digest.update(data.numpy().tobytes())
    return digest.hexdigest()
