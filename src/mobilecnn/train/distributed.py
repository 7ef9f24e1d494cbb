"""DistributedDataParallel setup from the environment ``torchrun`` provides.

Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` set) the process group uses NCCL
when the device is CUDA and gloo otherwise. Without those variables everything is a
single-process no-op.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..devices import pick_device  # the one device rule; importable from here as before

__all__ = [
    "DistContext",
    "all_reduce_flag",
    "broadcast_buffers",
    "cleanup_distributed",
    "gather_states",
    "gather_strings",
    "model_checksum",
    "pick_device",
    "setup_distributed",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size``; rank 0 does all file I/O."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(requested_device: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun; pick this process's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://",
                                rank=rank, world_size=world_size)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def cleanup_distributed() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_flag(flag: bool, device: torch.device) -> bool:
    """True on every process if it is true on any (e.g. "a signal arrived")."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def model_checksum(module: nn.Module) -> str:
    """SHA-256 of every parameter and buffer, bit-exact: equal iff the states are identical."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


def gather_strings(value: str) -> list[str]:
    """``value`` from every process, in rank order (``[value]`` without distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return [str(item) for item in gathered]


def gather_states(generator: torch.Generator) -> list[torch.Tensor]:
    """The generator state of every process, in rank order (a collective under DDP)."""
    state = generator.get_state()
    if not (dist.is_available() and dist.is_initialized()):
        return [state]
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, state)
    return [item for item in gathered if isinstance(item, torch.Tensor)]
