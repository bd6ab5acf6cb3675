"""Fixtures for the augmentation tests: small random batches and seeded generators."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def batch() -> torch.Tensor:
    """A (6, 3, 24, 24) float batch in [0, 1] with structure (not constant)."""
    g = torch.Generator().manual_seed(1234)
    return torch.rand(6, 3, 24, 24, generator=g)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
