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
        # A store namespace per torchrun attempt: after an elastic restart the new workers must not
        # read the previous attempt's (dead) peer addresses from the agent's long-lived store.
        store, rank, world_size = next(dist.rendezvous("env://"))
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        dist.init_process_group(backend=backend, store=dist.PrefixStore(f"ssl_toolkit/attempt_{attempt}", store),
                                rank=rank, world_size=world_size)
    return info, device


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group cleanly (all ranks together), so no rank aborts at exit."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
