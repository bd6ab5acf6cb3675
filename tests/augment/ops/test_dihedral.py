"""rotate90 and flip are exact pixel permutations (torch and albumentations agree)."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from bioaug.augment import make_op
from bioaug.errors import DataError


def _image(c: int = 3, h: int = 7, w: int = 7) -> torch.Tensor:
    # distinct values everywhere, so any wrong permutation is caught
    return (torch.arange(c * h * w, dtype=torch.float32).reshape(1, c, h, w) / (c * h * w))


def _albu(transform, x: torch.Tensor) -> torch.Tensor:
    out = transform(image=x[0].permute(1, 2, 0).numpy())["image"]
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)[None]


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rotate90_is_torch_rot90(k: int) -> None:
    x = _image()
    op = make_op("rotate90", turns=[k], p=1.0)
    out = op(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, torch.rot90(x, k, dims=(2, 3)))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotate90_matches_albumentations(k: int) -> None:
    x = _image()
    op = make_op("rotate90", turns=[k], p=1.0)
    out = op(x, torch.Generator().manual_seed(0))
    t = A.RandomRotate90(p=1.0)
    reference = torch.from_numpy(np.ascontiguousarray(
        t.apply(x[0].permute(1, 2, 0).numpy(), factor=k))).permute(2, 0, 1)[None]
    assert torch.equal(out, reference)


def test_rotate90_mixed_batch_applies_each_samples_own_turn() -> None:
    x = torch.rand(40, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    op = make_op("rotate90", p=1.0)
    params = op.sample(40, (2, 5, 5), torch.Generator().manual_seed(1))
    out = op.apply(x, params)
    assert set(params["k"].tolist()) == {0, 1, 2, 3}
    for i, k in enumerate(params["k"].tolist()):
        assert torch.equal(out[i], torch.rot90(x[i], k, dims=(1, 2)))


def test_rotate90_orientations_are_uniform() -> None:
    op = make_op("rotate90", p=1.0)
    k = op.sample(8000, (1, 4, 4), torch.Generator().manual_seed(0))["k"]
    counts = torch.bincount(k, minlength=4).float() / 8000
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.02)


def test_rotate90_needs_square_images() -> None:
    op = make_op("rotate90", turns=[1], p=1.0)
    with pytest.raises(DataError, match="square"):
        op(torch.rand(2, 1, 4, 6), torch.Generator().manual_seed(0))


@pytest.mark.parametrize(("horizontal", "vertical", "dims", "albu"), [
    (True, False, (3,), A.HorizontalFlip(p=1.0)),
    (False, True, (2,), A.VerticalFlip(p=1.0)),
    (True, True, (2, 3), A.Compose([A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0)])),
])
def test_flip_is_torch_flip_and_albumentations(horizontal, vertical, dims, albu) -> None:
    x = _image(h=5, w=8)
    out = make_op("flip", horizontal=horizontal, vertical=vertical, p=1.0)(
        x, torch.Generator().manual_seed(0))
    assert torch.equal(out, torch.flip(x, dims=dims))
    assert torch.equal(out, _albu(albu, x))


def test_flip_mixed_batch_flips_exactly_the_flagged_samples() -> None:
    x = torch.rand(30, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    op = make_op("flip", horizontal=True, vertical=True, p=0.5)
    params = op.sample(30, (1, 4, 4), torch.Generator().manual_seed(2))
    out = op.apply(x, params)
    for i in range(30):
        dims = [d for d, on in ((2, params["vertical"][i]), (3, params["horizontal"][i])) if on]
        expected = torch.flip(x[i:i + 1], dims=dims) if dims else x[i:i + 1]
        assert torch.equal(out[i:i + 1], expected)
