"""Multi-process training: the same ``bioaug train`` command under ``torchrun``.

``torchrun --nproc-per-node N -m bioaug train ...`` (or ``python -m torch.distributed.run``)
sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; :func:`init_distributed` then joins the process
group (NCCL on CUDA, Gloo on CPU). Each process reads its slice of every global batch and
the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`.

Which batch norms see the global batch is the method's decision
(:meth:`bioaug.methods.base.Method.use_global_batchnorm`, built on
:class:`bioaug.methods.distributed.GlobalBatchNorm`, or torch's SyncBatchNorm on CUDA):
every one for SimCLR, BYOL, Barlow Twins and VICReg, so N processes give the result of one
process with the same global batch; MoCo's key encoder keeps its own per process under
shuffle-BN (He et al. 2020).
"""

from __future__ import annotations

import datetime as _dt
import inspect
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from bioaug.device import pick_device
from bioaug.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device_preference: str = "auto") -> DistInfo:
    """Pick the device and, under torchrun (``WORLD_SIZE`` > 1), join the process group."""
    world = env_world_size()
    if world <= 1:
        return DistInfo(device=pick_device(device_preference))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ConfigError(f"multi-process training is not supported on {device.type}",
                          hint="use CUDA GPUs (NCCL) or --device cpu (Gloo)")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                timeout=_dt.timedelta(minutes=30))
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_mean(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``x`` over processes (a copy; ``x`` itself is left alone)."""
    if not info.distributed:
        return x
    y = x.detach().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y / info.world_size


class LossModule(nn.Module):
    """``forward(views) = method.training_loss(views)``: what DDP wraps."""

    def __init__(self, method: nn.Module) -> None:
        super().__init__()
        self.method = method

    def forward(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.method.training_loss(views)


def wrap_ddp(method: nn.Module, info: DistInfo) -> nn.Module:
    """The callable that computes the loss: DDP-wrapped under torchrun, else plain."""
    module = LossModule(method)
    if not info.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    # Buffers (batch-norm statistics over the global batch, MoCo's queue of gathered keys)
    # are identical on every process, so they are synced once at start and not every step.
    params = inspect.signature(DDP.__init__).parameters
    sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in params else \
        {"broadcast_buffers": False}
    return DDP(module, device_ids=[info.device.index] if info.device.type == "cuda" else None,
               **sync)
