"""channel_dropout blanks whole channels and never all of them."""

from __future__ import annotations

import pytest
import torch

from bioaug.augment import make_op


@pytest.mark.parametrize(("c", "max_dropped"), [(2, 1), (3, 1), (3, 2), (3, 5), (5, 3)])
def test_whole_channels_dropped_never_all(c: int, max_dropped: int) -> None:
    x = torch.rand(300, c, 6, 6, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    op = make_op("channel_dropout", max_dropped=max_dropped, fill=0.0, p=1.0)
    out = op(x, torch.Generator().manual_seed(1))
    zero = (out == 0).flatten(2)
    whole = zero.all(2)
    # a channel is either entirely blank or entirely untouched
    assert torch.equal(zero.any(2), whole)
    kept = ~whole
    assert torch.equal(out[kept.nonzero(as_tuple=True)], x[kept.nonzero(as_tuple=True)])
    dropped = whole.sum(1)
    assert int(dropped.min()) >= 1
    assert int(dropped.max()) == min(max_dropped, c - 1)  # every count happens, never all
    assert bool((dropped <= c - 1).all())


def test_every_channel_gets_dropped_about_equally() -> None:
    op = make_op("channel_dropout", max_dropped=1, p=1.0)
    dropped = op.sample(3000, (3, 2, 2), torch.Generator().manual_seed(0))["dropped"]
    share = dropped.float().mean(0)
    assert torch.allclose(share, torch.full((3,), 1 / 3), atol=0.03)


def test_fill_value_is_written() -> None:
    x = torch.rand(20, 3, 4, 4)
    out = make_op("channel_dropout", fill=0.5, p=1.0)(x, torch.Generator().manual_seed(0))
    assert bool(((out == 0.5).flatten(2).all(2)).sum(1).eq(1).all())
