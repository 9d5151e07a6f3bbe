"""Resumable parts shared out over the processes of a ``torchrun`` job (prediction, ingest).

The one sharding mechanism of the toolkit: ``apogee-net predict``, ``apogee-net lamost
predict``, ``apogee-net ingest`` and ``apogee-net lamost ingest`` all split their work into
numbered parts that are written to disk one by one (so that a rerun resumes), and
:class:`Shards` decides which process writes which part:

1. rank 0 looks at what is on disk (finished parts, the manifest of an interrupted run) and
   :meth:`Shards.from_main` sends the list of parts still to do to every rank (an error on
   rank 0 stops every rank with its message, instead of leaving them waiting);
2. each rank takes :meth:`Shards.mine` = every ``world``-th of those parts, starting at its
   rank (part ``todo[i]`` goes to rank ``i mod world``), so that a resumed run shares
   the remaining work evenly whichever rank died;
3. :meth:`Shards.wait` (a barrier) until every rank has written its parts; rank 0 joins them
   in input order; a second :meth:`Shards.wait` lets every rank return the finished output.

A part's content depends only on its number (per-star seeds are keyed by the star's index in
the whole input), never on which rank wrote it, so the output is the same, bit for bit, as a
one-process run on the same device and thread settings. Without ``torchrun``
(``WORLD_SIZE`` unset or 1) the same code runs as one process.

Coordination uses a gloo process group (CPU tensors only: it never touches GPU memory, and
works for GPU jobs too), joined here when ``torchrun`` started the process and no group
exists yet; a group that exists already (e.g. NCCL) gets a gloo subgroup. Its timeout is
:data:`TIMEOUT_S` seconds (environment ``YSO_SHARD_TIMEOUT_S``): the longest a rank may wait
at a barrier for the slowest one. Multi-node jobs need the output folder on a file system
every node sees.

Test hook: with ``YSO_FAULT_EXIT_AFTER_PARTS=RANK:N`` in the environment, rank ``RANK`` exits
abruptly (status 17, no clean-up) after writing ``N`` parts; the tests use it to kill a rank
mid-run and check that a rerun resumes without lost or duplicated rows.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a rank may wait at a barrier for the others (6 h; ``YSO_SHARD_TIMEOUT_S``).
TIMEOUT_S = 6 * 3600
#: Exit status of a rank stopped by the ``YSO_FAULT_EXIT_AFTER_PARTS`` test hook.
FAULT_EXIT_STATUS = 17


_GROUP: list = []  # the gloo group of this process, joined once


def _gloo_group():
    """The gloo group of this ``torchrun`` process (None: the default group is it), joined
    on first use and kept (left at exit)."""
    if _GROUP:
        return _GROUP[0]
    import atexit

    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=float(os.environ.get("YSO_SHARD_TIMEOUT_S",
                                                              TIMEOUT_S)))
    group = None
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo", timeout=timeout)
        atexit.register(dist.destroy_process_group)
    elif dist.get_backend() != "gloo":
        group = dist.new_group(backend="gloo", timeout=timeout)
    _GROUP.append(group)
    return group


class ShardError(ValueError, RuntimeError):
    """Rank 0 failed while planning; every rank stops with its message (a one-line CLI
    error, as rank 0's own)."""


def world_size() -> int:
    """Processes of this ``torchrun`` job (1 without ``torchrun``)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


class Shards:
    """This process's place in a sharded job: ``rank`` of ``world`` (module docstring).
    The process group it joins stays joined until the process exits (gloo cannot join a
    second group on ``torchrun``'s store in one process)."""

    def __init__(self) -> None:
        self.rank, self.world, self.group = 0, 1, None
        self._done = 0
        if world_size() <= 1:
            return
        import torch.distributed as dist

        self.group = _gloo_group()
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        log.info("sharded run: rank %d of %d", self.rank, self.world)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only, its result (picklable) sent to every rank; an
        exception on rank 0 is re-raised there and stops the others with a
        :class:`ShardError` naming it."""
        if self.world == 1:
            return fn()
        import torch.distributed as dist

        box: list[Any] = [None]
        error = None
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except BaseException as exc:  # sent to the other ranks, then re-raised here
                error = exc
                box[0] = ("error", f"{type(exc).__name__}: {exc}")
        dist.broadcast_object_list(box, src=0, group=self.group)
        if error is not None:
            raise error
        status, value = box[0]
        if status == "error":
            raise ShardError(f"rank 0 stopped: {value}")
        return value

    def mine(self, todo: Sequence[T]) -> list[T]:
        """This rank's share of ``todo``: items ``rank, rank + world, …``."""
        return list(todo[self.rank::self.world])

    def wait(self) -> None:
        """Barrier: return when every rank has reached it."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier(group=self.group)

    def part_done(self) -> None:
        """Count a written part (the ``YSO_FAULT_EXIT_AFTER_PARTS`` test hook)."""
        self._done += 1
        hook = os.environ.get("YSO_FAULT_EXIT_AFTER_PARTS", "")
        if hook:
            rank, after = (int(v) for v in hook.split(":"))
            if rank == self.rank and self._done >= after:
                log.error("YSO_FAULT_EXIT_AFTER_PARTS=%s: rank %d exits now", hook, self.rank)
                os._exit(FAULT_EXIT_STATUS)
