from __future__ import annotations

import pytest
import torch
from torch import nn


class TinyBackbone(nn.Module):
    """A small conv encoder with batch norm, enough to exercise every method quickly."""

    def __init__(self, in_channels: int = 2, out_dim: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, out_dim, 3, padding=1),
            nn.BatchNorm2d(out_dim),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.fixture
def tiny_backbone() -> TinyBackbone:
    torch.manual_seed(0)
    return TinyBackbone()


@pytest.fixture
def views() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.rand(6, 2, 8, 8, generator=g) for _ in range(2)]
