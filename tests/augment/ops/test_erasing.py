"""random_erasing."""

from __future__ import annotations

import torch

from bioaug.augment import make_op


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
