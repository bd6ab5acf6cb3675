"""Optimisers and the learning-rate schedule (pure functions of the step).

* SGD with momentum (MoCo v2: He et al. 2020; Chen et al. 2020, arXiv 2003.04297).
* LARS, layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017, arXiv 1708.03888),
  as used by SimCLR, BYOL and Barlow Twins: each weight tensor's update is scaled by
  ``trust · ‖w‖ / (‖g‖ + wd·‖w‖)``; biases and normalisation parameters (1-D tensors) get
  neither weight decay nor the adaptation (the usual exclusion in those papers).
* Linear warm-up followed by cosine decay to zero (Loshchilov & Hutter 2017, SGDR),
  evaluated per optimiser step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate for optimiser step ``step`` (0-based) of ``total_steps``.

    Linear warm-up from ``base_lr / warmup_steps`` to ``base_lr`` over ``warmup_steps``
    steps, then a half cosine from ``base_lr`` down to 0 at ``total_steps``.
    """
    if total_steps <= 0:
        raise ValueError("total_steps must be positive")
    warmup_steps = max(0, min(int(warmup_steps), total_steps))
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 0:
        return base_lr
    t = min(max(step - warmup_steps, 0), decay_steps) / decay_steps
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al. 2017).

    Param groups with ``lars=False`` (biases, BatchNorm) are plain SGD with momentum.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9,
                 weight_decay: float = 0.0, trust_coefficient: float = 0.001,
                 eps: float = 1e-8) -> None:
        if lr <= 0:
            raise ValueError(f"invalid learning rate {lr}")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                    "trust_coefficient": trust_coefficient, "eps": eps, "lars": True}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if group["lars"]:
                    w_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(d_p)
                    wd = group["weight_decay"]
                    if wd:
                        d_p = d_p.add(p, alpha=wd)
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0),
                        group["trust_coefficient"] * w_norm / (g_norm + wd * w_norm
                                                              + group["eps"]),
                        torch.ones_like(w_norm))
                    d_p = d_p.mul(trust)
                elif group["weight_decay"]:
                    d_p = d_p.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = d_p.detach().clone()
                else:
                    buf.mul_(group["momentum"]).add_(d_p)
                p.add_(buf, alpha=-group["lr"])
        return loss


OPTIMIZERS = ("sgd", "lars")


def build_optimizer(model: nn.Module, name: str, lr: float, momentum: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    """The optimiser over ``model``'s trainable parameters.

    SGD applies weight decay to every parameter (as MoCo v2 does); LARS excludes 1-D
    parameters (biases, norm layers) from weight decay and from the adaptation.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "lars":
        matrices = [p for p in params if p.ndim > 1]
        vectors = [p for p in params if p.ndim <= 1]
        groups = [{"params": matrices, "lars": True, "weight_decay": weight_decay},
                  {"params": vectors, "lars": False, "weight_decay": 0.0}]
        return LARS([g for g in groups if g["params"]], lr=lr, momentum=momentum,
                    weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
