"""PyTorch's distributed engine for ``torchrun``: process group, DDP wrapping, rank-0 gating.

``torchrun --nproc_per_node N -m yolov3 train ...`` sets RANK, LOCAL_RANK and WORLD_SIZE; each
process then trains on ``cuda:LOCAL_RANK`` (NCCL) or the CPU (gloo) with 1/N of the global batch.
DDP averages gradients over processes, so N processes with batch B/N step like one with batch B
(up to batch-norm statistics, which are per process unless SyncBatchNorm is on).

It sits beside ``device.py``, below everything that runs under ``torchrun`` (training, ``detect``'s
shards, ``val``), and imports only torch.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def shard_indices(n: int, info: DistInfo) -> range:
    """The indices of ``n`` items that process ``info.rank`` of ``info.world_size`` takes, round-robin:
    ``rank, rank + world, ...``; the shards are disjoint, cover every item and differ by at most one.
    What ``detect``'s shards (files) and ``val``'s (samples) both split by."""
    return range(info.rank, n, info.world_size)


def env_dist_info() -> DistInfo:
    """What torchrun (or any launcher setting RANK / LOCAL_RANK / WORLD_SIZE) asked for."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world)


def init_distributed(info: DistInfo, device: torch.device) -> torch.device:
    """Join the process group when ``info.enabled``; returns this process's device
    (``cuda:LOCAL_RANK`` when training on CUDA)."""
    if not info.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # rank 0 validates while the others wait: allow far longer than NCCL's 10-minute default
        timeout = datetime.timedelta(minutes=60)
        dist.init_process_group(backend, rank=info.rank, world_size=info.world_size, timeout=timeout)
    return device


def wrap_model(model: nn.Module, info: DistInfo, device: torch.device, sync_bn: bool) -> nn.Module:
    """DDP (and SyncBatchNorm when asked) around ``model``; unchanged on one process."""
    if not info.enabled:
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=not sync_bn)


def all_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True only when ``flag`` is true on every process (so all skip a step together)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def mean_over_processes(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Average a dict of floats over processes (for logging)."""
    if not info.enabled or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / info.world_size).tolist()))


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: object, info: DistInfo) -> object:
    """Rank 0's ``obj`` on every process."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
