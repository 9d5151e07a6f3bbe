"""Data-parallel training with ``torch.distributed`` (one process per GPU, or per CPU
process on the gloo backend).

A run launched by ``torchrun`` has ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``
and ``MASTER_PORT`` in its environment; :func:`setup` then joins the process group (NCCL on
GPUs, gloo on the CPU). Without them everything degrades to a single process and the same
code path. Only rank 0 writes files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from yso_labels.core.runtime import resolve_device

log = logging.getLogger(__name__)


@dataclass
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, its ``device``."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this module initialised the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistContext:
    """Resolve the device and, under ``torchrun`` (``WORLD_SIZE`` > 1), join the process
    group: NCCL when the device is a GPU, gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistContext(device=dev)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        owns = True
        log.info("joined process group: rank %d of %d (%s)", dist.get_rank(),
                 dist.get_world_size(), backend)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), device=dev,
                       owns_group=owns)


def is_main_process() -> bool:
    """True on rank 0 of a ``torchrun`` job (the process group's rank when joined, else the
    ``RANK`` that ``torchrun`` sets) and in a single process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def teardown(ctx: DistContext) -> None:
    """Leave the process group if :func:`setup` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum of ``values`` over all processes (identity for a single process)."""
    if ctx.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index or 0])
        else:
            dist.barrier()


def wrap(model: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """``DistributedDataParallel`` around ``model`` when distributed (it broadcasts rank 0's
    weights, so every rank starts identical), else ``model`` itself."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index or 0] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


class ShardSampler(torch.utils.data.Sampler):
    """Indices ``rank, rank + world, …`` of ``n``: every item once over all ranks, no
    padding (for exact evaluation sums; training uses ``DistributedSampler``)."""

    def __init__(self, n: int, ctx: DistContext):
        self.n, self.rank, self.world = n, ctx.rank, ctx.world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))
