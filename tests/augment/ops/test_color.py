"""color_jitter and grayscale against torchvision's functional reference."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from bioaug.augment import make_op


def _one(key: str, value: float) -> dict:
    base = {"brightness": [1.0, 1.0], "contrast": [1.0, 1.0], "saturation": [1.0, 1.0],
            "hue": [0.0, 0.0]}
    base[key] = [value, value]
    return base


@pytest.mark.parametrize(("key", "value", "fn"), [
    ("brightness", 1.4, TF.adjust_brightness),
    ("contrast", 0.6, TF.adjust_contrast),
    ("saturation", 1.7, TF.adjust_saturation),
    ("hue", 0.15, TF.adjust_hue),
    ("hue", -0.4, TF.adjust_hue),
])
def test_each_adjustment_matches_torchvision(key: str, value: float, fn) -> None:
    x = torch.rand(3, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    out = make_op("color_jitter", p=1.0, **_one(key, value))(x, torch.Generator().manual_seed(0))
    ref = torch.stack([fn(img, value) for img in x])
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=0)


def test_grayscale_matches_torchvision() -> None:
    x = torch.rand(2, 3, 8, 8)
    out = make_op("grayscale", p=1.0)(x)
    ref = TF.rgb_to_grayscale(x, num_output_channels=3)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_random_order_is_a_permutation_per_sample() -> None:
    op = make_op("color_jitter", p=1.0)
    order = op.sample(500, (3, 4, 4), torch.Generator().manual_seed(0))["order"]
    assert torch.equal(order.sort(1).values, torch.arange(4).expand(500, 4))
    assert len({tuple(r) for r in order.tolist()}) == 24
