"""color_jitter and grayscale against torchvision's functional reference."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from bioaug.augment import make_op, native
from bioaug.augment.ops.color import adjust_hue


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


def _pixel(r: float, g: float, b: float) -> torch.Tensor:
    return torch.tensor([r, g, b]).view(1, 3, 1, 1)


@pytest.mark.parametrize(("rgb", "shift", "expected"), [
    ((1.0, 0.0, 0.0), 1 / 3, (0.0, 1.0, 0.0)),    # red → green
    ((0.0, 1.0, 0.0), 1 / 3, (0.0, 0.0, 1.0)),    # green → blue
    ((0.0, 0.0, 1.0), 1 / 3, (1.0, 0.0, 0.0)),    # blue → red
    ((1.0, 0.0, 0.0), -1 / 3, (0.0, 0.0, 1.0)),   # red → blue backwards
    ((1.0, 0.0, 0.0), 1 / 6, (1.0, 1.0, 0.0)),    # red → yellow
    ((1.0, 0.0, 0.0), 0.5, (0.0, 1.0, 1.0)),      # half a turn: the complement
    ((0.8, 0.4, 0.2), 0.0, (0.8, 0.4, 0.2)),      # no shift: unchanged
    ((0.6, 0.6, 0.6), 0.37, (0.6, 0.6, 0.6)),     # gray has no hue
    ((0.0, 0.0, 0.0), 0.2, (0.0, 0.0, 0.0)),
])
def test_hue_known_answers(rgb, shift, expected) -> None:
    out = adjust_hue(_pixel(*rgb), torch.tensor([shift]))
    torch.testing.assert_close(out, _pixel(*expected), atol=1e-6, rtol=0)


def test_hue_offsets_are_per_sample_and_keep_value_and_saturation() -> None:
    x = torch.rand(6, 3, 5, 7, generator=torch.Generator().manual_seed(3))
    shifts = torch.tensor([0.0, 0.1, -0.25, 0.5, -0.5, 1 / 3])
    out = adjust_hue(x, shifts)
    for i in range(len(x)):  # each sample alone gives the same as within the batch
        torch.testing.assert_close(out[i:i + 1], adjust_hue(x[i:i + 1], shifts[i:i + 1]),
                                   atol=1e-6, rtol=0)
        ref = TF.adjust_hue(x[i], float(shifts[i]))
        torch.testing.assert_close(out[i], ref, atol=2e-5, rtol=0)
    torch.testing.assert_close(out[0], x[0], atol=1e-6, rtol=0)
    # a hue rotation keeps each pixel's max (HSV value) and min (hence saturation)
    torch.testing.assert_close(out.amax(1), x.amax(1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.amin(1), x.amin(1), atol=1e-6, rtol=0)


def test_hue_round_trip_returns_the_image() -> None:
    x = torch.rand(4, 3, 6, 6, generator=torch.Generator().manual_seed(4))
    shifts = torch.tensor([0.05, -0.3, 0.45, 0.2])
    back = adjust_hue(adjust_hue(x, shifts), -shifts)
    torch.testing.assert_close(back, x, atol=1e-5, rtol=0)


def test_color_jitter_with_mixed_hue_matches_torchvision_per_sample() -> None:
    """Random order and per-sample factors, against torchvision applied sample by sample."""
    x = torch.rand(12, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    op = make_op("color_jitter", brightness=0.4, contrast=0.4, saturation=0.4, hue=0.5, p=1.0)
    params = op.sample(12, (3, 8, 8), torch.Generator().manual_seed(6))
    out = op.apply(x, params)
    fns = [("brightness", TF.adjust_brightness), ("contrast", TF.adjust_contrast),
           ("saturation", TF.adjust_saturation), ("hue", TF.adjust_hue)]
    for i in range(len(x)):
        ref = x[i]
        for which in params["order"][i].tolist():
            key, fn = fns[which]
            ref = fn(ref, float(params[key][i]))
        torch.testing.assert_close(out[i], ref, atol=5e-5, rtol=0)


@pytest.mark.parametrize("params", [
    {"brightness": 0.5, "contrast": 0, "saturation": 0, "hue": 0, "p": 1.0},
    {"brightness": 0, "contrast": 0.5, "saturation": 0, "hue": 0, "p": 1.0},
    {"brightness": 0, "contrast": 0, "saturation": 0.5, "hue": 0, "p": 1.0},
    {"brightness": 0, "contrast": 0, "saturation": 0, "hue": 0.5, "p": 1.0},
])
def test_compiled_kernel_gives_each_torch_adjustment(monkeypatch, params) -> None:
    g = torch.Generator().manual_seed(9)
    x = torch.rand(16, 3, 21, 19, generator=g)
    x[0] = 0.5  # gray pixels have no hue
    x[1, :, :4] = x[1, :1, :4]  # ties between channels
    op = make_op("color_jitter", **params)
    drawn = op.sample(16, (3, 21, 19), g)
    compiled = op.apply(x, drawn)
    monkeypatch.setenv(native.ENV, "0")
    torch.testing.assert_close(compiled, op.apply(x, drawn), atol=1e-6, rtol=0)


def test_compiled_kernel_gives_the_torch_jitter_in_random_order(monkeypatch) -> None:
    g = torch.Generator().manual_seed(10)
    x = torch.rand(30, 3, 16, 16, generator=g)
    op = make_op("color_jitter", brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8)
    drawn = op.sample(30, (3, 16, 16), g)
    picked = drawn["apply"]
    compiled = op.apply(x, drawn)
    assert torch.equal(compiled[~picked], x[~picked])
    monkeypatch.setenv(native.ENV, "0")
    # hue divides by max − min, so float rounding of the steps before it grows a little
    torch.testing.assert_close(compiled, op.apply(x, drawn), atol=1e-5, rtol=0)
