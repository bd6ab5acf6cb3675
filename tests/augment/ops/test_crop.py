"""Crops and resizing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bioaug.augment import make_op


def test_random_resized_crop_full_box_is_a_resize() -> None:
    x = torch.rand(3, 2, 20, 20, generator=torch.Generator().manual_seed(0))
    op = make_op("random_resized_crop", scale=[1.0, 1.0], ratio=[1.0, 1.0], size=20, p=1.0)
    out = op(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_random_resized_crop_boxes_follow_scale_and_ratio() -> None:
    op = make_op("random_resized_crop", scale=[0.2, 0.5], ratio=[0.5, 2.0], size=8, p=1.0)
    boxes = op.sample(2000, (1, 50, 60), torch.Generator().manual_seed(0))["boxes"]
    x0, y0, w, h = boxes.unbind(1)
    area = w * h / (50 * 60)
    assert float(area.min()) >= 0.2 - 1e-4 and float(area.max()) <= 0.5 + 1e-4
    ratio = w / h
    assert float(ratio.min()) >= 0.5 - 1e-4 and float(ratio.max()) <= 2.0 + 1e-4
    assert float(x0.min()) >= 0 and float((x0 + w).max()) <= 60 + 1e-4
    assert float(y0.min()) >= 0 and float((y0 + h).max()) <= 50 + 1e-4


def test_random_resized_crop_of_a_known_box_is_that_region() -> None:
    x = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    op = make_op("random_resized_crop", size=8, p=1.0)
    params = {"apply": torch.tensor([True]), "boxes": torch.tensor([[4.0, 2.0, 8.0, 8.0]])}
    out = op.apply(x, params)
    torch.testing.assert_close(out, x[:, :, 2:10, 4:12], atol=1e-5, rtol=0)


def test_random_resized_crop_size_defaults_to_crop_size() -> None:
    op = make_op("random_resized_crop", p=1.0, crop_size=12)
    assert op.output_shape((3, 40, 30)) == (3, 12, 12)


def test_center_crop_is_the_central_window_and_pads_small_images() -> None:
    x = torch.rand(2, 1, 10, 10)
    out = make_op("center_crop", size=4, p=1.0)(x)
    assert torch.equal(out, x[:, :, 3:7, 3:7])
    small = make_op("center_crop", size=6, p=1.0)(torch.ones(1, 1, 4, 4))
    assert small.shape == (1, 1, 6, 6)
    assert float(small.sum()) == 16.0


def test_resize_matches_interpolate() -> None:
    x = torch.rand(2, 3, 20, 20)
    out = make_op("resize", size=10, p=1.0)(x)
    ref = F.interpolate(x, size=(10, 10), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(out, ref)
