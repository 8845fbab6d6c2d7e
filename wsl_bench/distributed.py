"""Several processes on one run (`torchrun --nproc_per_node=N -m wsl_bench ...`): torchrun sets
RANK / WORLD_SIZE / LOCAL_RANK; each rank scores its share of the loader batches on its own GPU
(cuda:LOCAL_RANK) and writes its own record parts into the one run directory; rank 0 waits for
the others and merges. The processes only coordinate (the run directory, one barrier at the end),
so the process group is gloo's whatever the device: no tensor crosses between ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch.distributed as dist

# A rank that finishes early waits this long at the end for the slowest one.
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ranks_from_env() -> Ranks:
    """This process's place among torchrun's (a single process when not started by torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    return Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", os.environ["RANK"])))


def init(ranks: Ranks) -> None:
    """Join the process group (gloo), once per process; nothing for a single process."""
    if ranks.world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo", rank=ranks.rank, world_size=ranks.world, timeout=BARRIER_TIMEOUT)


def broadcast(value: Any, ranks: Ranks) -> Any:
    """Rank 0's value, on every rank."""
    if ranks.world <= 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.barrier()
