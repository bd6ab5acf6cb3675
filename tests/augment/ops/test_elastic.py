"""elastic."""

from __future__ import annotations

import torch

from bioaug.augment import make_op


def test_elastic_with_zero_strength_is_identity() -> None:
    x = torch.rand(2, 1, 16, 16)
    out = make_op("elastic", alpha=[0.0, 0.0], p=1.0)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)
