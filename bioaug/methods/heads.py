"""MLP heads (projectors and predictors) used by the self-supervised methods.

* MoCo v2 (Chen et al. 2020): ``Linear → ReLU → Linear`` (no batch norm).
* SimCLR (Chen et al. 2020) and BYOL (Grill et al. 2020):
  ``Linear → BN → ReLU → Linear``.
* Barlow Twins (Zbontar et al. 2021) and VICReg (Bardes et al. 2022): three layers,
  ``Linear → BN → ReLU → Linear → BN → ReLU → Linear``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["mlp"]


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
