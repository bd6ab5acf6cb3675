"""intensity_normalize."""

from __future__ import annotations

import torch

from bioaug.augment import make_op


def test_intensity_normalize_methods() -> None:
    x = torch.linspace(0.2, 0.6, 101).reshape(1, 1, 1, 101)
    minmax = make_op("intensity_normalize", method="minmax", p=1.0)(x)
    torch.testing.assert_close(minmax, torch.linspace(0, 1, 101).reshape(1, 1, 1, 101),
                               atol=1e-5, rtol=0)
    pct = make_op("intensity_normalize", method="percentile", low=10, high=90, p=1.0)(x)
    assert float(pct[0, 0, 0, 10]) < 1e-5 and abs(float(pct[0, 0, 0, 90]) - 1) < 1e-5
    ms = make_op("intensity_normalize", method="meanstd", target_std=0.1, p=1.0)(x)
    assert abs(float(ms.mean()) - 0.5) < 1e-5 and abs(float(ms.std()) - 0.1) < 1e-4
