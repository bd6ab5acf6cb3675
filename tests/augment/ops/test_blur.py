"""gaussian_blur and defocus."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from bioaug.augment import make_op, native


def test_gaussian_blur_matches_scipy_with_reflect_borders() -> None:
    x = torch.rand(2, 2, 20, 20, generator=torch.Generator().manual_seed(0))
    sigma = 1.3
    op = make_op("gaussian_blur", sigma=[sigma, sigma], p=1.0)
    out = op(x)
    radius = int(np.ceil(3 * sigma))
    ref = ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="mirror",
                                  truncate=radius / sigma)
    torch.testing.assert_close(out, torch.from_numpy(ref), atol=1e-5, rtol=0)


def test_gaussian_blur_uses_each_samples_sigma() -> None:
    x = torch.zeros(2, 1, 21, 21)
    x[:, :, 10, 10] = 1.0
    op = make_op("gaussian_blur", sigma=[0.5, 3.0], p=1.0)
    params = {"apply": torch.tensor([True, True]), "sigma": torch.tensor([0.5, 3.0])}
    out = op.apply(x, params)
    assert float(out[0, 0, 10, 10]) > float(out[1, 0, 10, 10])  # the sharper one peaks higher
    torch.testing.assert_close(out.sum((1, 2, 3)), torch.ones(2), atol=1e-5, rtol=0)


def test_defocus_keeps_constant_images_and_spreads_a_point_over_a_disk() -> None:
    flat = torch.full((1, 1, 15, 15), 0.4)
    op = make_op("defocus", radius=[3.0, 3.0], p=1.0)
    torch.testing.assert_close(op(flat), flat)
    point = torch.zeros(1, 1, 15, 15)
    point[0, 0, 7, 7] = 1.0
    out = op(point)[0, 0]
    assert abs(float(out.sum()) - 1.0) < 1e-5
    assert float(out[7, 7 + 2]) > 0 and float(out[7, 7 + 5]) == 0  # inside vs outside r=3


def test_blocked_application_gives_the_same_outputs_as_one_pass(monkeypatch) -> None:
    """Ops with large intermediates run on the CPU BLOCK samples at a time: same numbers."""
    from bioaug.augment.ops import base

    x = torch.rand(40, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    for name, params in [("gaussian_blur", {"sigma": [0.5, 2.0]}), ("defocus", {}),
                         ("rotate", {"degrees": [10, 50]}), ("elastic", {"sigma": 3})]:
        op = make_op(name, p=0.7, **params)
        assert op.blocked
        drawn = op.sample(40, (3, 20, 20), torch.Generator().manual_seed(1))
        monkeypatch.setattr(base, "BLOCK", 10_000)
        whole = op.apply(x, drawn)
        monkeypatch.setattr(base, "BLOCK", 3)
        blocked = op.apply(x, drawn)
        torch.testing.assert_close(blocked, whole, atol=1e-6, rtol=0)
        assert not torch.equal(blocked, x)


@pytest.mark.parametrize("shape", [(12, 3, 17, 23), (6, 2, 3, 9)])  # mirrored / replicated borders
def test_compiled_blur_gives_the_torch_blur(monkeypatch, shape) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.rand(*shape, generator=g)
    op = make_op("gaussian_blur", sigma=[0.3, 1.5], p=0.6)
    params = op.sample(shape[0], shape[1:], g)
    picked = params["apply"]
    assert 0 < int(picked.sum()) < shape[0]
    compiled = op.apply(x, params)
    monkeypatch.setenv(native.ENV, "0")
    reference = op.apply(x, params)
    torch.testing.assert_close(compiled, reference, atol=1e-6, rtol=0)
    assert torch.equal(compiled[~picked], x[~picked])
    # in place on the pipeline's own intermediates, the caller's tensor otherwise
    y = x.clone()
    monkeypatch.setenv(native.ENV, "1")
    assert op.apply(y, params, inplace=True) is y and torch.equal(y, compiled)
    z = x.clone()
    assert op.apply(z, params) is not z and torch.equal(z, x)
