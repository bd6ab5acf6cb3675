"""rotate (any angle) and affine maps."""

from __future__ import annotations

import torch

from bioaug.augment import make_op


def test_rotate_by_90_degrees_equals_rot90() -> None:
    x = torch.rand(2, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    for angle, k in ((90, 1), (180, 2), (-90, 3)):
        out = make_op("rotate", degrees=[angle, angle], p=1.0)(x)
        torch.testing.assert_close(out, torch.rot90(x, k, dims=(2, 3)), atol=1e-5, rtol=0)


def test_rotate_constant_fill_and_reflect_modes() -> None:
    x = torch.full((1, 1, 16, 16), 0.5)
    filled = make_op("rotate", degrees=[45, 45], mode="constant", fill=1.0, p=1.0)(x)
    assert float(filled[0, 0, 0, 0]) == 1.0  # corner comes from outside: the fill value
    assert abs(float(filled[0, 0, 8, 8]) - 0.5) < 1e-6
    reflected = make_op("rotate", degrees=[45, 45], mode="reflect", p=1.0)(x)
    torch.testing.assert_close(reflected, x)  # a constant image stays constant


def test_affine_identity_parameters_are_identity() -> None:
    x = torch.rand(2, 1, 12, 12)
    out = make_op("affine", p=1.0)(x)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_affine_translation_shifts_by_whole_pixels() -> None:
    x = torch.zeros(1, 1, 10, 10)
    x[0, 0, 4, 4] = 1.0
    op = make_op("affine", translate=0.2, p=1.0)
    params = op.sample(1, (1, 10, 10), torch.Generator().manual_seed(0))
    params["translate"] = torch.tensor([[2.0, -1.0]])  # +2 px right, 1 px up
    out = op.apply(x, params)
    assert abs(float(out[0, 0, 3, 6]) - 1.0) < 1e-5
    assert abs(float(out.sum()) - 1.0) < 1e-5


def test_affine_zoom_moves_points_away_from_the_centre() -> None:
    x = torch.zeros(1, 1, 11, 11)
    x[0, 0, 5, 7] = 1.0  # 2 px right of the centre
    op = make_op("affine", scale=[2.0, 2.0], interpolation="nearest", p=1.0)
    out = op(x)
    assert float(out[0, 0, 5, 9]) == 1.0  # now 4 px right of the centre
