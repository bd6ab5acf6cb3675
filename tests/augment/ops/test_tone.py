"""solarize, equalize, intensity_normalize, random_erasing, elastic."""

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


def test_intensity_normalize_methods() -> None:
    x = torch.linspace(0.2, 0.6, 101).reshape(1, 1, 1, 101)
    minmax = make_op("intensity_normalize", method="minmax", p=1.0)(x)
    torch.testing.assert_close(minmax, torch.linspace(0, 1, 101).reshape(1, 1, 1, 101),
                               atol=1e-5, rtol=0)
    pct = make_op("intensity_normalize", method="percentile", low=10, high=90, p=1.0)(x)
    assert float(pct[0, 0, 0, 10]) < 1e-5 and abs(float(pct[0, 0, 0, 90]) - 1) < 1e-5
    ms = make_op("intensity_normalize", method="meanstd", target_std=0.1, p=1.0)(x)
    assert abs(float(ms.mean()) - 0.5) < 1e-5 and abs(float(ms.std()) - 0.1) < 1e-4


def test_random_erasing_blanks_one_rectangle_of_the_drawn_area() -> None:
    x = torch.ones(50, 1, 20, 20)
    op = make_op("random_erasing", scale=[0.1, 0.2], value=0.0, p=1.0)
    out = op(x, torch.Generator().manual_seed(0))
    erased = (out == 0).float().mean((1, 2, 3))
    assert float(erased.min()) > 0.05 and float(erased.max()) < 0.3
    for img in out[:, 0]:
        rows = (img == 0).any(1).nonzero().squeeze(1)
        cols = (img == 0).any(0).nonzero().squeeze(1)
        block = img[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert bool((block == 0).all())  # one solid rectangle


def test_elastic_with_zero_strength_is_identity() -> None:
    x = torch.rand(2, 1, 16, 16)
    out = make_op("elastic", alpha=[0.0, 0.0], p=1.0)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)
