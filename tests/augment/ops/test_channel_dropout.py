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


def test_channels_limits_the_draw_and_keeps_the_others_whole() -> None:
    """Known answer: with ``channels: [0, 2]`` channel 1 is never touched; one step per
    channel drops each on its own with the step's probability."""
    x = torch.rand(4000, 3, 3, 3, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    op = make_op("channel_dropout", channels=[0, 2], max_dropped=2, p=1.0)
    out = op(x, torch.Generator().manual_seed(1))
    whole = (out == 0).flatten(2).all(2)
    assert torch.equal(out[:, 1], x[:, 1])
    assert not bool(whole[:, 1].any())
    counts = whole.sum(1)
    assert set(counts.tolist()) == {1, 2}  # count uniform in [1, 2] over the two picked
    assert abs(float((counts == 2).float().mean()) - 0.5) < 0.03
    alone = make_op("channel_dropout", channels=[2], max_dropped=2, p=0.8)
    dropped = alone.sample(4000, (3, 2, 2), torch.Generator().manual_seed(2))
    picked = dropped["dropped"] & dropped["apply"][:, None]
    assert picked[:, :2].sum() == 0
    assert abs(float(picked[:, 2].float().mean()) - 0.8) < 0.03


def test_all_channels_picked_draws_as_without_the_key() -> None:
    x = torch.rand(50, 3, 4, 4)
    every = make_op("channel_dropout", channels=[0, 1, 2], max_dropped=2, p=0.7)
    plain = make_op("channel_dropout", max_dropped=2, p=0.7)
    assert torch.equal(every(x, torch.Generator().manual_seed(3)),
                       plain(x, torch.Generator().manual_seed(3)))


@pytest.mark.parametrize(("channels", "expected"), [
    ([], "non-empty list"), ([0, 0], "channels repeat: 0"), ([-1], "index from 0"),
    ([True], "index from 0"), ("DNA", "non-empty list"), ([""], "index from 0")])
def test_bad_channel_lists_are_refused(channels: object, expected: str) -> None:
    from bioaug.errors import ProtocolError

    with pytest.raises(ProtocolError, match=expected):
        make_op("channel_dropout", channels=channels)


def test_an_index_past_the_data_is_a_protocol_error() -> None:
    from bioaug.errors import ProtocolError

    op = make_op("channel_dropout", channels=[3])
    with pytest.raises(ProtocolError, match=r"channel index 3 is out of range: the data has "
                                            r"3 channels \(0 to 2\)"):
        op.sample(2, (3, 4, 4), torch.Generator().manual_seed(0))
