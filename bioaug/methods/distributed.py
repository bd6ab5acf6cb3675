"""Collective helpers for multi-process (DistributedDataParallel) training.

Every helper is a no-op when ``torch.distributed`` is not initialised (or has one
process), so methods call them unconditionally. All ranks must pass tensors of the same
shape (train with ``drop_last=True``).

* :func:`gather_with_grad` — concatenate a tensor from all ranks along dim 0 keeping the
  autograd graph: the backward pass sums the incoming gradients over ranks and returns
  this rank's slice. A loss computed identically on every rank from gathered tensors then
  gets exactly the gradient of that global loss after DDP averages the gradients. Only
  ``all_gather`` and ``all_reduce`` are used, so it works with Gloo (CPU) and NCCL.
* :func:`gather_no_grad` — the same without a graph (e.g. keys for MoCo's queue).
* :func:`batch_shuffle` / :func:`batch_unshuffle` — MoCo's shuffle-BN (He et al. 2020):
  the key encoder's batch is permuted across ranks so that batch-norm statistics of a key
  are computed with other samples than its query.
* :class:`GlobalBatchNorm` / :func:`convert_to_global_batchnorm` — batch norm whose
  training statistics are those of the global batch (all ranks), with exact gradients.
  Unlike ``torch.nn.SyncBatchNorm`` it runs on CPU (Gloo) as well as GPU, and in one
  process it is plain batch norm; its state-dict keys are those of ``nn.BatchNorm*d``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "GlobalBatchNorm",
    "batch_shuffle",
    "batch_unshuffle",
    "convert_to_global_batchnorm",
    "gather_no_grad",
    "gather_with_grad",
    "is_distributed",
    "rank",
    "world_size",
]


def is_distributed() -> bool:
    """True when torch.distributed is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.batch = x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.batch
        return grad[start : start + ctx.batch]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' ``x`` concatenated along dim 0 (rank order), differentiable."""
    if not is_distributed():
        return x
    return _GatherWithGrad.apply(x)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """All ranks' ``x`` concatenated along dim 0 (rank order), detached."""
    if not is_distributed():
        return x.detach()
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts, dim=0)


@torch.no_grad()
def batch_shuffle(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Shuffle the global batch across ranks; return this rank's shard and the inverse index.

    Rank 0 draws a permutation of the global batch and broadcasts it; every rank takes
    its slice of the permuted batch. Single process: returns ``(x, None)`` unchanged (a
    permutation within one batch cannot change batch-norm statistics).
    """
    if not is_distributed():
        return x, None
    local = x.shape[0]
    x_all = gather_no_grad(x)
    perm = torch.randperm(x_all.shape[0], device=x.device)
    dist.broadcast(perm, src=0)
    unshuffle = torch.argsort(perm)
    start = rank() * local
    return x_all[perm[start : start + local]], unshuffle


@torch.no_grad()
def batch_unshuffle(x: torch.Tensor, unshuffle: torch.Tensor | None) -> torch.Tensor:
    """Undo :func:`batch_shuffle`: this rank's outputs back in its original sample order."""
    if unshuffle is None:
        return x
    local = x.shape[0]
    x_all = gather_no_grad(x)
    start = rank() * local
    return x_all[unshuffle[start : start + local]]


class GlobalBatchNorm(_BatchNorm):
    """Batch norm over the global batch of all ranks (any input rank ≥ 2, channels on dim 1).

    In training mode under torch.distributed, the per-channel sums and sums of squares of
    every rank are added (differentiably) so that the normalisation, the running statistics
    and the gradients equal those of one process holding the whole global batch. Otherwise
    it is ``F.batch_norm``.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-d input (B, C, ...), got {x.dim()}-d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        c = x.shape[1]
        shape = [1, c] + [1] * (x.dim() - 2)
        xf = x.float()
        n = float(x.numel() // c * world_size())
        # Two passes (mean, then centred squares) for the same accuracy as one process.
        mean = gather_with_grad(xf.sum(dims).unsqueeze(0)).sum(dim=0) / n
        centred = xf - mean.view(shape)
        var = gather_with_grad((centred * centred).sum(dims).unsqueeze(0)).sum(dim=0) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                )
                unbiased = var * (n / max(n - 1.0, 1.0))
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased.detach(), alpha=momentum)
        out = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)


def convert_to_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm1d/2d/3d`` in ``module`` by :class:`GlobalBatchNorm`.

    Parameters and running statistics are kept (same tensors), so state dicts stay
    interchangeable. Returns the (possibly new) root module.
    """
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm | nn.SyncBatchNorm):
        new = GlobalBatchNorm(
            module.num_features, eps=module.eps, momentum=module.momentum,
            affine=module.affine, track_running_stats=module.track_running_stats,
        )
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean = module.running_mean
            new.running_var = module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        converted = convert_to_global_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return module
