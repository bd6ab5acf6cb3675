"""The batched resampler: the separable path for axis-aligned maps equals grid_sample."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bioaug.augment import native
from bioaug.augment.ops import geometry
from bioaug.augment.ops.geometry import _to_normalised, affine_grid, box_matrix, compose, warp


def _grid_sample(x: torch.Tensor, matrix: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    theta = _to_normalised((x.shape[2], x.shape[3]), size, matrix)
    return F.grid_sample(x, affine_grid(theta, size), mode="bilinear", padding_mode="border",
                         align_corners=False)


def _axis_maps(n: int, h: int, w: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Random boxes (some reaching past the border) combined with quarter turns and flips."""
    bw = (0.3 + 1.0 * torch.rand(n, generator=g)) * w
    bh = (0.3 + 1.0 * torch.rand(n, generator=g)) * h
    x0 = torch.rand(n, generator=g) * w - 0.2 * w
    y0 = torch.rand(n, generator=g) * h - 0.2 * h
    m = box_matrix(torch.stack([x0, y0, bw, bh], 1), (size, size))
    s = float(size - 1)
    turns = torch.tensor([[[1, 0, 0], [0, 1, 0]], [[0, -1, s], [1, 0, 0]],
                          [[-1, 0, s], [0, -1, s]], [[0, 1, 0], [-1, 0, s]]], dtype=torch.float32)
    flips = torch.tensor([[[1, 0, 0], [0, 1, 0]], [[-1, 0, s], [0, 1, 0]],
                          [[1, 0, 0], [0, -1, s]], [[-1, 0, s], [0, -1, s]]], dtype=torch.float32)
    k = torch.randint(0, 4, (n,), generator=g)
    f = torch.randint(0, 4, (n,), generator=g)
    return compose(compose(m, turns[k]), flips[f])


def test_separable_path_matches_grid_sample_for_crops_turns_and_flips() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, 17, 23, generator=g)
    m = _axis_maps(40, 17, 23, 9, g)
    swapped = geometry._axis_aligned(m, (9, 9))
    assert swapped is not None and bool(swapped.any()) and not bool(swapped.all())
    torch.testing.assert_close(warp(x, m, (9, 9), padding="border"), _grid_sample(x, m, (9, 9)),
                               atol=5e-5, rtol=0)


def test_quarter_turn_of_the_whole_image_is_exact() -> None:
    x = torch.rand(2, 2, 6, 6)
    s = 5.0
    m = torch.tensor([[[0, -1, s], [1, 0, 0]], [[0, 1, 0], [-1, 0, s]]], dtype=torch.float32)
    out = warp(x, m, (6, 6), padding="border")
    assert torch.equal(out[0], torch.rot90(x[0], 1, dims=(1, 2)))
    assert torch.equal(out[1], torch.rot90(x[1], 3, dims=(1, 2)))


def test_other_maps_use_grid_sample() -> None:
    angle = torch.tensor(0.3)
    rot = torch.stack([torch.stack([angle.cos(), -angle.sin(), torch.tensor(1.0)]),
                       torch.stack([angle.sin(), angle.cos(), torch.tensor(0.0)])])[None]
    assert geometry._axis_aligned(rot, (5, 5)) is None
    x = torch.rand(1, 1, 7, 7)
    torch.testing.assert_close(warp(x, rot, (5, 5), padding="border"),
                               _grid_sample(x, rot, (5, 5)), atol=1e-6, rtol=0)
    # a swap of the axes into a non-square output is left to grid_sample too
    swap = torch.tensor([[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]])
    assert geometry._axis_aligned(swap, (4, 5)) is None


def test_block_size_of_the_separable_path_does_not_change_the_result(monkeypatch) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(50, 2, 15, 15, generator=g)
    m = _axis_maps(50, 15, 15, 8, g)
    monkeypatch.setattr(geometry, "WARP_BLOCK", 1000)
    whole = warp(x, m, (8, 8), padding="border")
    monkeypatch.setattr(geometry, "WARP_BLOCK", 7)
    assert torch.equal(warp(x, m, (8, 8), padding="border"), whole)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_kernel_gives_the_torch_passes(monkeypatch, dtype) -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(30, 3, 19, 16, generator=g).to(dtype)
    m = _axis_maps(30, 19, 16, 11, g)
    assert native.available(x)
    compiled = torch.full((1, 30, 3, 11, 11), -1.0, dtype=dtype)
    assert geometry.warp_views(x, [m], (11, 11), compiled)
    reference = warp(x, m, (11, 11), padding="border")
    torch.testing.assert_close(compiled[0], reference, atol=1e-6, rtol=0)
    monkeypatch.setenv(native.ENV, "0")  # switched off: nothing written, the caller warps
    untouched = torch.full((1, 30, 3, 11, 11), -1.0, dtype=dtype)
    assert not geometry.warp_views(x, [m], (11, 11), untouched)
    assert bool((untouched == -1).all())


def test_compiled_warp_declines_what_it_cannot_take() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(4, 2, 9, 9, generator=g)
    m = _axis_maps(4, 9, 9, 5, g)
    wrong_size = torch.empty(1, 4, 2, 6, 6)
    assert not geometry.warp_views(x, [m], (5, 5), wrong_size)
    turned = geometry.centred_inverse(geometry.rotation(torch.full((4,), 30.0)),
                                      torch.zeros(4, 2), (9, 9))
    assert not geometry.warp_views(x, [turned], (5, 5), torch.empty(1, 4, 2, 5, 5))


def test_the_separable_path_writes_into_the_given_output() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.rand(5, 2, 12, 12, generator=g)
    m = _axis_maps(5, 12, 12, 7, g)
    out = torch.full((5, 2, 7, 7), -1.0)
    assert warp(x, m, (7, 7), padding="border", out=out) is out
    torch.testing.assert_close(out, _grid_sample(x, m, (7, 7)), atol=5e-5, rtol=0)
