"""Optimisers and the learning-rate schedule (pure functions of the step).

* SGD with momentum (MoCo v2: He et al. 2020; Chen et al. 2020, arXiv 2003.04297).
* LARS, layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017, arXiv 1708.03888),
  as used by SimCLR, BYOL, Barlow Twins and VICReg: each weight tensor's update is scaled
  by the trust ratio ``η · ‖w‖ / (‖g‖ + wd·‖w‖)``. With ``clip`` (solo-learn's CIFAR
  recipes) the ratio is divided by the learning rate and capped at 1, so a layer never
  moves by more than ``η`` of its norm per step, whatever the learning rate.
* AdamW (Loshchilov & Hutter 2019), decoupled weight decay; β₁ is ``momentum``, β₂
  ``adam_beta2`` (PyTorch's 0.999 unless the method's recipe says otherwise).
* Linear warm-up followed by cosine decay to zero (Loshchilov & Hutter 2017, SGDR),
  evaluated per optimiser step.

Biases and normalisation parameters (every 1-D tensor) can be excluded from weight decay
and from LARS adaptation (``exclude_bias_norm``), the usual practice of SimCLR, BYOL,
Barlow Twins and VICReg.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

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

    Param groups with ``lars=False`` (biases, norm layers) are plain SGD with momentum.
    ``trust_coefficient`` is η; ``clip`` caps the layer-wise rate at the global one
    (``min(η‖w‖/(‖g‖+wd‖w‖) / lr, 1)``, as solo-learn's LARS with ``clip_lr``).
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9,
                 weight_decay: float = 0.0, trust_coefficient: float = 0.001,
                 eps: float = 1e-8, clip: bool = False) -> None:
        if lr <= 0:
            raise ValueError(f"invalid learning rate {lr}")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                    "trust_coefficient": trust_coefficient, "eps": eps, "lars": True,
                    "clip": clip}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                wd = group["weight_decay"]
                if group["lars"]:
                    w_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(d_p)
                    trust = group["trust_coefficient"] * w_norm / (g_norm + wd * w_norm
                                                                   + group["eps"])
                    if group["clip"]:
                        trust = torch.clamp(trust / group["lr"], max=1.0)
                    trust = torch.where((w_norm > 0) & (g_norm > 0), trust,
                                        torch.ones_like(w_norm))
                    if wd:
                        d_p = d_p.add(p, alpha=wd)
                    d_p = d_p.mul(trust)
                elif wd:
                    d_p = d_p.add(p, alpha=wd)
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = d_p.detach().clone()
                else:
                    buf.mul_(group["momentum"]).add_(d_p)
                p.add_(buf, alpha=-group["lr"])
        return loss


OPTIMIZERS = ("sgd", "lars", "adamw")


def param_groups(model: nn.Module, weight_decay: float, exclude_bias_norm: bool,
                 lr_scales: Mapping[str, float] | None = None) -> list[dict]:
    """Trainable parameters split into decayed matrices and (optionally) undecayed vectors.

    Every group carries ``lars`` (adapt this group under LARS): matrices yes, vectors only
    when they are not excluded. ``lr_scales`` maps a submodule's name (``"predictor"``) to a
    factor on its parameters' learning rate: they get groups of their own with ``lr_scale``,
    which :func:`set_lr` applies.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential()
    >>> net.add_module("encoder", nn.Linear(4, 4))
    >>> net.add_module("predictor", nn.Linear(4, 4))
    >>> [(len(g["params"]), g["weight_decay"], g["lr_scale"])
    ...  for g in param_groups(net, 1e-4, True, {"predictor": 10.0})]
    [(1, 0.0001, 1.0), (1, 0.0, 1.0), (1, 0.0001, 10.0), (1, 0.0, 10.0)]
    """
    scales = {str(k): float(v) for k, v in (lr_scales or {}).items()}
    for name, scale in scales.items():
        try:
            model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"lr_scales names {name!r}, which is not a submodule of "
                             f"{type(model).__name__}") from None
        if not scale > 0:
            raise ValueError(f"lr_scales[{name!r}] must be positive, got {scale}")

    def scale_of(param_name: str) -> float:
        for prefix, scale in scales.items():
            if param_name == prefix or param_name.startswith(prefix + "."):
                return scale
        return 1.0

    groups: dict[tuple[float, bool], dict] = {}
    for scale in [1.0, *sorted(set(scales.values()) - {1.0})]:
        for vector in (False, True):
            decayed = not (vector and exclude_bias_norm)
            groups[scale, vector] = {"params": [], "lars": decayed,
                                     "weight_decay": weight_decay if decayed else 0.0,
                                     "lr_scale": scale}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups[scale_of(name), exclude_bias_norm and p.ndim <= 1]["params"].append(p)
    return [g for g in groups.values() if g["params"]]


def build_optimizer(model: nn.Module, name: str, lr: float, momentum: float,
                    weight_decay: float, *, exclude_bias_norm: bool | None = None,
                    trust_coefficient: float = 0.001, clip: bool = False,
                    adam_beta2: float = 0.999,
                    lr_scales: Mapping[str, float] | None = None) -> torch.optim.Optimizer:
    """The optimiser over ``model``'s trainable parameters.

    ``momentum`` is SGD/LARS momentum, or AdamW's β₁; ``adam_beta2`` is AdamW's β₂.
    ``exclude_bias_norm`` (default: only for LARS) takes 1-D parameters out of weight
    decay and LARS adaptation. ``trust_coefficient`` and ``clip`` are LARS's η and rate
    clipping. ``lr_scales`` multiplies the learning rate of named submodules (BYOL's
    predictor, see :func:`param_groups`).

    Examples
    --------
    >>> from torch import nn
    >>> from bioaug.train.optim import build_optimizer
    >>> opt = build_optimizer(nn.Linear(2, 2), "adamw", 1e-3, 0.9, 0.05, adam_beta2=0.95)
    >>> opt.param_groups[0]["betas"]
    (0.9, 0.95)
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    if exclude_bias_norm is None:
        exclude_bias_norm = name == "lars"
    groups = param_groups(model, weight_decay, exclude_bias_norm, lr_scales)
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    if name == "sgd":
        return torch.optim.SGD([{k: v for k, v in g.items() if k != "lars"} for g in groups],
                               lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW([{k: v for k, v in g.items() if k != "lars"} for g in groups],
                                 lr=lr, betas=(momentum, adam_beta2),
                                 weight_decay=weight_decay)
    return LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay,
                trust_coefficient=trust_coefficient, clip=clip)


def set_momentum(optimizer: torch.optim.Optimizer, momentum: float, adam_beta2: float
                 ) -> None:
    """Set SGD/LARS ``momentum``, or AdamW's β₁ (``momentum``) and β₂ (``adam_beta2``), in
    every param group: a loaded optimiser state brings the saved values, which the run's
    own must replace."""
    for group in optimizer.param_groups:
        if "betas" in group:
            group["betas"] = (momentum, adam_beta2)
        if "momentum" in group:
            group["momentum"] = momentum


def weight_decay_at(step: int, total_steps: int, start: float, end: float | None) -> float:
    """Weight decay for step ``step`` of ``total_steps``: a half cosine from ``start`` to
    ``end`` (DINO's schedule, Caron et al. 2021); ``end=None`` keeps ``start``."""
    if end is None:
        return start
    t = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t))


def set_weight_decay(groups: list[dict], weight_decay: float) -> None:
    """Set the weight decay of the (decayed) param ``groups`` to ``weight_decay``."""
    for group in groups:
        group["weight_decay"] = weight_decay


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every param group's learning rate to ``lr`` times its ``lr_scale`` (1 if none)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
