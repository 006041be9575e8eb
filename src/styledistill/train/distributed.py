"""Where this process sits in a torchrun job, and the few collectives the loop needs.

Run directly, the world is one process and every collective is a no-op.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class Dist:
    """Rank and world of this process (world 1 when run directly)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def any(self, flags: Sequence[bool], device: torch.device) -> list[bool]:
        """Each flag OR-ed over all ranks (one small all-reduce)."""
        tensor = torch.tensor([float(f) for f in flags], device=device)
        if self.enabled:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return [bool(v) for v in tensor.tolist()]

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out


def setup_distributed(device_name: str | None) -> tuple[Dist, torch.device]:
    """Join the torchrun process group when RANK/WORLD_SIZE are set; pick the device.

    NCCL on GPUs, Gloo on CPUs.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if "RANK" not in os.environ or world <= 1:
        from ..runtime import resolve_device

        return Dist(), resolve_device(device_name)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = torch.cuda.is_available() and (device_name is None or device_name.startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world)
    return Dist(rank, local_rank, world, True), device


def state_hash(module: nn.Module) -> str:
    """SHA-256 of every tensor in a state dict (to check that DDP ranks agree)."""
    digest = hashlib.sha256()
    for name, value in module.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
