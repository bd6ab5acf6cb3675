"""The albumentations escape hatch."""

from __future__ import annotations

import pytest
import torch

from bioaug.augment import make_op
from bioaug.errors import ProtocolError


def test_runs_a_transform_per_sample_and_replays() -> None:
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    op = make_op("albumentations", transform="InvertImg", p=1.0)
    torch.testing.assert_close(op(x), 1 - x)
    blur = make_op("albumentations", transform="GaussianBlur", sigma_limit=[0.5, 2.0], p=1.0)
    a = blur(x, torch.Generator().manual_seed(3))
    b = blur(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_single_channel_images_keep_their_channel() -> None:
    x = torch.rand(2, 1, 12, 12)
    out = make_op("albumentations", transform="GaussianBlur", p=1.0)(x)
    assert out.shape == x.shape


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"transform": "GausianBlur"}, "did you mean 'GaussianBlur'"),
    ({"transform": "GaussianBlur", "sigmax": 1}, "has no parameter 'sigmax'"),
    ({"transform": "Blur", "blur_limit": "big"}, "rejected its arguments: blur_limit"),
    ({"transform": 7}, "must be the name of an albumentations transform"),
])
def test_bad_transforms_are_protocol_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        make_op("albumentations", p=1.0, **kwargs)
