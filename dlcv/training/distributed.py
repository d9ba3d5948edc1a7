"""Data-parallel set-up for runs launched by ``torchrun`` (one process per GPU or per CPU slot).

Nothing here starts processes: ``torchrun ... --nproc_per_node N script.py ...`` does
(:data:`SINGLE_NODE` on one machine), and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``. A plain ``python script.py`` is a world of one.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dlcv.cli import UserError
from dlcv.runtime import pick_device

#: torchrun's flags for one machine: the rendezvous on the loopback address and a free port.
#: (``--standalone`` publishes the host's fully qualified name instead, which a container or a
#: laptop on another network may resolve to an address that does not answer.)
SINGLE_NODE = "--nnodes 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:0 --local-addr 127.0.0.1"
#: How long a rank tries to reach the rendezvous (``MASTER_ADDR:MASTER_PORT``) before it gives up.
REACH_SECONDS = 10.0


def check_rendezvous(addr: str, port: int, within: float | None = None) -> None:
    """Return once a TCP connection to ``addr:port`` (torchrun's store) succeeds, or raise one
    :class:`UserError` line after ``within`` seconds (:data:`REACH_SECONDS`), instead of waiting
    for torch's 30-minute timeout."""
    within = REACH_SECONDS if within is None else within
    deadline = time.monotonic() + within
    while True:
        try:
            with socket.create_connection((addr, port), timeout=max(0.1, min(2.0, within))):
                return
        except OSError as err:
            reason = err.strerror or type(err).__name__
        if time.monotonic() >= deadline:
            raise UserError(
                f"cannot reach the data-parallel rendezvous {addr}:{port} ({reason}) within "
                f"{within:g}s; on one machine launch with `torchrun {SINGLE_NODE} "
                "--nproc_per_node N ...`"
            )
        time.sleep(0.2)


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
        if "MASTER_ADDR" in os.environ:
            port = os.environ.get("MASTER_PORT", "29500")
            if not port.isdigit():
                raise UserError(f"MASTER_PORT must be a port number, got {port!r}")
            check_rendezvous(os.environ["MASTER_ADDR"], int(port))
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
