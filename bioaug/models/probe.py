"""Probing a backbone's intermediate layers: one pooled vector per block or stage.

An intermediate block often embeds cells better than the last one (Kraus et al. 2024,
"ViTally Consistent: Scaling Biological Representation Learning for Cell Microscopy").
Each backbone lists the layers it can be probed at (``probe_layers()``, in depth order)
and returns their features in one forward pass (``probe_many(x, layers)``): convolutional
stages are global-average pooled to ``(B, channels)``; Vision Transformer blocks give
their class token after the final layer norm, ``(B, embed_dim)``.

This module holds what the backbones share: pooling and the check of layer names.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bioaug.errors import ConfigError, did_you_mean

__all__ = ["check_probe_layers", "global_average_pool", "numbered_layers"]


def numbered_layers(prefix: str, count: int) -> list[str]:
    """``["stage1", …, "stageN"]`` (1-based, as papers number blocks)."""
    return [f"{prefix}{i}" for i in range(1, count + 1)]


def global_average_pool(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` → ``(B, C)``: the mean over positions."""
    return x.mean(dim=(-2, -1))


def check_probe_layers(backbone: str, layers: Sequence[str], valid: Sequence[str]) -> None:
    """ConfigError naming the first layer not in ``valid`` and listing the valid ones."""
    for layer in layers:
        if layer not in valid:
            raise ConfigError(f"backbone '{backbone}' has no layer '{layer}'"
                              f"{did_you_mean(str(layer), valid)}; its layers: "
                              f"{', '.join(valid)}")
