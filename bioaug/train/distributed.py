"""Multi-process training: the same ``bioaug train`` command under ``torchrun``.

``torchrun --nproc-per-node N -m bioaug train ...`` (or ``python -m torch.distributed.run``)
sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; :func:`init_distributed` then joins the process
group (NCCL on CUDA, Gloo on CPU). Each process reads its slice of every global batch,
the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` and
batch-norm statistics are computed over the global batch, so N processes give the same
result as one process with the same global batch, up to floating-point noise.

Batch norm over the global batch: on CUDA torch's :class:`~torch.nn.SyncBatchNorm`. That
class only runs on GPUs (it raises "expected input tensor to be on GPU" on CPU), so on CPU
every ``BatchNorm*d`` is replaced by :class:`GlobalBatchNorm`, which all-reduces the sums
it needs (two-pass mean and variance) through a differentiable all-reduce whose backward
all-reduces the gradients of those sums: exactly the gradient of the global-batch
statistics (the argument of Ioffe & Szegedy 2015 applied to the global batch).
"""

from __future__ import annotations

import datetime as _dt
import inspect
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

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


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of a sum over processes is the summed gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = x.clone()
        dist.all_reduce(y, op=dist.ReduceOp.SUM)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        g = grad.contiguous().clone()
        dist.all_reduce(g, op=dist.ReduceOp.SUM)
        return g


def _all_reduce_grad(x: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(x)


class GlobalBatchNorm(_BatchNorm):
    """Batch norm with statistics over the batches of all processes (any device).

    Same parameters and buffers as ``BatchNorm{1,2,3}d`` (state dicts are interchangeable);
    without an initialised multi-process group, or in eval mode, it is plain batch norm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (got {input.dim()}-D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if not (self.training and distributed):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        sums = _all_reduce_grad(torch.cat([x.sum(dims), count]))
        total = sums[-1].detach()
        mean = sums[:-1] / total
        centred = x - mean.view(shape)
        var = _all_reduce_grad((centred * centred).sum(dims)) / total
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                     else self.momentum)
                unbiased = var.detach() * total / max(float(total) - 1.0, 1.0)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
        return y


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Make every batch norm in ``module`` use global-batch statistics.

    CUDA: torch's SyncBatchNorm. Other devices: :class:`GlobalBatchNorm`. Parameters and
    buffers are reused, not copied, so references to them stay valid.
    """
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _to_global_bn(module)


def _to_global_bn(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        out = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            out.weight = module.weight
            out.bias = module.bias
        if module.track_running_stats:
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        new = _to_global_bn(child)
        if new is not child:
            setattr(out, name, new)
    return out


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
