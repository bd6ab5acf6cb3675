"""MLP heads (projectors and predictors) used by the self-supervised methods.

* MoCo v2 (Chen et al. 2020): ``Linear → ReLU → Linear`` (no batch norm).
* SimCLR (Chen et al. 2020) and BYOL (Grill et al. 2020):
  ``Linear → BN → ReLU → Linear``.
* Barlow Twins (Zbontar et al. 2021) and VICReg (Bardes et al. 2022): three layers,
  ``Linear → BN → ReLU → Linear → BN → ReLU → Linear``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel
from torch import nn

__all__ = ["PROJECTOR_WIDTH_PER_FEATURE", "mlp", "projector_width", "with_projector_widths"]

Config = TypeVar("Config", bound=BaseModel)

#: width of a redundancy-reduction projector (Barlow Twins, VICReg) per backbone feature
#: when none is given: the papers' 8192 on ResNet-50's 2048 features and solo-learn's 2048
#: on ResNet-18's 512 are both 4 ×. On the real imaging-flow cells (VGG13 at width 0.25,
#: 128 features, batch 128) Barlow Twins' AMI went 0.271 → 0.387 → 0.463 for widths
#: 2048, 1024 and 512 (seed 0; docs/training.md).
PROJECTOR_WIDTH_PER_FEATURE = 4


def projector_width(width: int | None, feature_dim: int) -> int:
    """``width``, or :data:`PROJECTOR_WIDTH_PER_FEATURE` × ``feature_dim`` when it is None.

    >>> projector_width(None, 512), projector_width(None, 128), projector_width(300, 128)
    (2048, 512, 300)
    """
    return int(width) if width is not None else PROJECTOR_WIDTH_PER_FEATURE * int(feature_dim)


def with_projector_widths(config: Config, feature_dim: int) -> Config:
    """``config`` with its ``proj_hidden_dim`` and ``proj_output_dim`` resolved by
    :func:`projector_width`: the method records the widths it built, so a checkpoint's
    hyperparameters rebuild the same projector."""
    return config.model_copy(update={
        key: projector_width(getattr(config, key), feature_dim)
        for key in ("proj_hidden_dim", "proj_output_dim")})


def mlp(
    in_dim: int,
    hidden_dims: Sequence[int],
    out_dim: int,
    *,
    batch_norm: bool = True,
    last_bias: bool = True,
) -> nn.Sequential:
    """``Linear(in, h0) [BN] ReLU … Linear(h_last, out)``: one hidden block per ``hidden_dims``."""
    layers: list[nn.Module] = []
    dim = in_dim
    for hidden in hidden_dims:
        layers.append(nn.Linear(dim, hidden, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.ReLU(inplace=True))
        dim = hidden
    layers.append(nn.Linear(dim, out_dim, bias=last_bias))
    return nn.Sequential(*layers)
