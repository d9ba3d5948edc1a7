"""Data-parallel set-up for runs launched by ``torchrun`` (one process per GPU or per CPU slot).

Nothing here starts processes: ``torchrun --nproc_per_node N script.py ...`` does,
and sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. A plain ``python script.py``
is a world of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dlcv.runtime import pick_device


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun (NCCL on CUDA, gloo on the CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return DistInfo(0, 1, 0, pick_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, dev)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_int(value: int, info: DistInfo) -> int:
    """Rank 0's ``value`` on every rank (a no-op when running alone)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.long, device=info.device)
    dist.broadcast(t, src=0)
    return int(t.item())


def max_int(value: int, info: DistInfo) -> int:
    """The largest ``value`` of all ranks, on every rank (``value`` itself when running alone)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.long, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def all_gather_object(obj: object, info: DistInfo) -> list[object]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank (``[obj]`` when alone)."""
    if not info.enabled:
        return [obj]
    gathered: list[object] = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
