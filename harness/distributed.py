"""Data-parallel evaluation on torch.distributed (launch with `torchrun --nproc-per-node N -m harness run ...`).

Samples are sharded by sorted sample id (`ids[rank::world]`, no padding duplicates as DistributedSampler would add);
per-sample records go to rank 0, which deduplicates, checks the count and computes every set-level metric once.
The per-sample cache is shared and rank-independent, so a run resumes on any number of processes.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

# Evaluation ranks can wait long for each other (one rank decodes a long video): do not let a collective time out.
TIMEOUT = datetime.timedelta(days=7)


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj` on rank 0 (None elsewhere)."""
        if self.world_size == 1:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        if self.world_size == 1:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str = "cpu") -> DistContext:
    """The process's place in a torchrun job (a single process when not launched by torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT)
        owns = True
    return DistContext(rank, world, local_rank, owns)


def rank_device(device: str, ctx: DistContext) -> str:
    """`cuda` becomes `cuda:<local rank>` under torchrun; other devices are left alone."""
    if device == "cuda" and ctx.world_size > 1:
        return f"cuda:{ctx.local_rank}"
    return device
