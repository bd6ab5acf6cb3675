"""solarize, equalize."""

from __future__ import annotations

import torch

from bioaug.augment import make_op


def test_solarize_formula() -> None:
    x = torch.tensor([[[[0.1, 0.49, 0.5, 0.9]]]])
    out = make_op("solarize", threshold=0.5, p=1.0)(x)
    torch.testing.assert_close(out, torch.tensor([[[[0.1, 0.49, 0.5, 0.1]]]]))


def test_equalize_flattens_the_histogram() -> None:
    x = (torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0)) ** 2)
    out = make_op("equalize", p=1.0)(x)
    hist = torch.histc(out, bins=4, min=0, max=1)
    assert float(hist.min()) > 0.2 * 64 * 64  # each quarter of the range holds ~25 %
    # order preserving: brighter stays brighter
    order = x.flatten().argsort()
    assert bool((out.flatten()[order].diff() >= -1e-6).all())
