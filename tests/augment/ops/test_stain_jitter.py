"""stain_jitter against its documented formula."""

from __future__ import annotations

import pytest
import torch

from bioaug.augment import make_op, native
from bioaug.augment.ops.stain_jitter import StainJitter


def reference(x: torch.Tensor, b: torch.Tensor, k: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The docstring's formula, written out loop by loop."""
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            a = torch.clamp(b[i, c] * x[i, c], 0, 1)
            m = a.mean()
            out[i, c] = torch.clamp(k[i, c] * (a - m) + m, 0, 1) ** g[i, c]
    return out


def test_matches_formula_per_channel() -> None:
    x = torch.rand(5, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    op = make_op("stain_jitter", brightness=[0.5, 1.8], contrast=[0.3, 1.7], gamma=[0.6, 1.5],
                 per_channel=True, p=1.0)
    params = op.sample(5, (3, 9, 9), torch.Generator().manual_seed(1))
    out = op.apply(x, params)
    expected = reference(x, params["brightness"], params["contrast"], params["gamma"])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    # per-channel: the factors differ between channels of one sample
    assert params["brightness"][0].unique().numel() == 3


def test_not_per_channel_shares_factors_across_channels() -> None:
    op = make_op("stain_jitter", brightness=0.4, contrast=0.4, gamma=0.3, per_channel=False,
                 p=1.0)
    params = op.sample(6, (4, 5, 5), torch.Generator().manual_seed(0))
    for key in ("brightness", "contrast", "gamma"):
        assert torch.all(params[key] == params[key][:, :1])
    x = torch.rand(6, 4, 5, 5, generator=torch.Generator().manual_seed(2))
    expected = reference(x, params["brightness"], params["contrast"], params["gamma"])
    torch.testing.assert_close(op.apply(x, params), expected, atol=1e-6, rtol=1e-5)


def test_known_answer_brightness_doubles_a_dim_image() -> None:
    x = torch.full((1, 1, 2, 2), 0.2)
    x[0, 0, 0, 0] = 0.4
    op = make_op("stain_jitter", brightness=[2.0, 2.0], contrast=[1.0, 1.0], p=1.0)
    out = op(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, torch.tensor([[[[0.8, 0.4], [0.4, 0.4]]]]))


def test_known_answer_zero_contrast_gives_the_channel_mean() -> None:
    x = torch.tensor([[[[0.0, 0.2], [0.4, 0.6]]]])
    op = make_op("stain_jitter", brightness=[1.0, 1.0], contrast=[0.0, 0.0], p=1.0)
    out = op(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, torch.full_like(x, 0.3))


def test_scalar_shorthand_is_symmetric_about_one() -> None:
    params = StainJitter.Params(brightness=0.3, contrast=0.25, gamma=0.5)
    assert params.brightness == (0.7, 1.3)
    assert params.contrast == (0.75, 1.25)
    assert params.gamma == (0.5, 1.5)


@pytest.mark.parametrize("params", [
    {"brightness": 0.4, "contrast": 0.5, "p": 0.7},
    {"brightness": 0.4, "contrast": 0.5, "gamma": 0.3, "p": 0.6},
    {"brightness": 0.4, "contrast": 0.5, "gamma": 0.3, "per_channel": False, "p": 0.6},
])
def test_compiled_kernel_gives_the_torch_formula(monkeypatch, params) -> None:
    g = torch.Generator().manual_seed(8)
    x = torch.rand(20, 3, 13, 11, generator=g)
    op = make_op("stain_jitter", **params)
    drawn = op.sample(20, (3, 13, 11), g)
    picked = drawn["apply"]
    compiled = op.apply(x, drawn)
    monkeypatch.setenv(native.ENV, "0")
    reference = op.apply(x, drawn)
    torch.testing.assert_close(compiled, reference, atol=1e-6, rtol=0)
    assert torch.equal(compiled[~picked], x[~picked])
