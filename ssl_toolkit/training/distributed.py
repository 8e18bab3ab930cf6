"""torch.distributed set-up for runs launched by ``torchrun`` (DDP); single process otherwise."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..devices import resolve_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    restarted: bool = False
    """torchrun started these workers again (any node's failure): the run continues from its checkpoint."""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, ...)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), resolve_device(device_name, local_rank=0)
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_name, info.local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # The job's store outlives worker restarts. TORCHELASTIC_RESTART_COUNT cannot number the starts: when a
        # worker on another node fails, torchrun restarts this node's workers without raising it, so the nodes
        # would disagree. Each rank counts its own starts in the store instead (the same count on every rank),
        # which names a fresh namespace per start (no rank reads a dead peer's address) and says "restarted".
        store, rank, world_size = next(dist.rendezvous("env://"))
        starts = store.add(f"ssl_toolkit/starts/rank_{rank}", 1)
        dist.init_process_group(
            backend=backend,
            store=dist.PrefixStore(f"ssl_toolkit/start_{starts}", store),
            rank=rank,
            world_size=world_size,
        )
        info = DistInfo(info.rank, info.world_size, info.local_rank, restarted=starts > 1)
    return info, device


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


_HOST_GROUP: list = []


def every_rank(*flags: bool) -> tuple[bool, ...]:
    """For each flag, whether it holds on every rank: one vote on host values over a gloo group (a NCCL all-reduce
    would wait for the device's queued work). All ranks must call it at the same point; without DDP the flags."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flags
    if not _HOST_GROUP:  # created once, by every rank at its first vote (shutdown() forgets it)
        _HOST_GROUP.append(None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo"))
    vote = torch.tensor([int(f) for f in flags])
    dist.all_reduce(vote, op=dist.ReduceOp.MIN, group=_HOST_GROUP[0])
    return tuple(bool(v) for v in vote)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group cleanly (all ranks together), so no rank aborts at exit."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _HOST_GROUP.clear()
