"""Properties every op must have: p=0 identity, p=1 applies, replayable, sliceable."""

from __future__ import annotations

import pytest
import torch

from bioaug.augment import OPS, make_op
from bioaug.augment.ops.base import ChannelSupport

# parameters that make each op visibly change an image when it is applied
ACTIVE: dict[str, dict] = {
    "random_resized_crop": {"scale": [0.3, 0.6], "size": 16},
    "center_crop": {"size": 16},
    "resize": {"size": 16},
    "rotate90": {"turns": [1, 2, 3]},
    "flip": {"horizontal": True},
    "rotate": {"degrees": [20, 70]},
    "affine": {"degrees": [10, 30], "shear": [5, 10]},
    "elastic": {"alpha": [2, 4], "sigma": 3},
    "stain_jitter": {"brightness": [0.5, 0.7]},
    "channel_dropout": {"max_dropped": 2},
    "gaussian_blur": {"sigma": [1.0, 2.0]},
    "defocus": {"radius": [1.5, 2.5]},
    "gaussian_noise": {"std": [0.05, 0.1]},
    "poisson_noise": {"photons": [20, 50]},
    "intensity_normalize": {"method": "minmax"},
    "random_erasing": {"scale": [0.2, 0.3], "value": 0.5},
    "color_jitter": {"brightness": [0.5, 0.6], "hue": [0.2, 0.3]},
    "grayscale": {},
    "solarize": {"threshold": [0.3, 0.3]},
    "equalize": {},
    "albumentations": {"transform": "InvertImg"},
}
SIZE_PRESERVING = [n for n in OPS if not OPS[n].changes_size or n == "albumentations"]


def test_every_op_has_active_parameters_here() -> None:
    assert set(ACTIVE) == set(OPS)


def _x(n: int = 8, c: int = 3, size: int = 24, seed: int = 5) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", SIZE_PRESERVING)
def test_p0_is_identity(name: str) -> None:
    x = _x()
    out = make_op(name, p=0.0, **ACTIVE[name])(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, x)


@pytest.mark.parametrize("name", list(OPS))
def test_p1_changes_every_sample(name: str) -> None:
    x = _x()
    op = make_op(name, p=1.0, **ACTIVE[name])
    params = op.sample(len(x), tuple(x.shape[1:]), torch.Generator().manual_seed(0))
    assert bool(params["apply"].all())
    out = op.apply(x, params)
    if out.shape == x.shape:
        changed = (out - x).abs().flatten(1).amax(1)
        assert bool((changed > 1e-3).all()), f"{name} left a sample unchanged: {changed}"
    elif name != "resize":  # a size-changing op: compare with resizing the whole image
        whole = torch.nn.functional.interpolate(x, size=out.shape[2:], mode="bilinear",
                                                antialias=True, align_corners=False)
        assert bool(((out - whole).abs().flatten(1).amax(1) > 1e-3).all())


@pytest.mark.parametrize("name", SIZE_PRESERVING)
def test_unpicked_samples_pass_through_unchanged(name: str) -> None:
    x = _x(n=12)
    op = make_op(name, p=0.5, **ACTIVE[name])
    params = op.sample(len(x), tuple(x.shape[1:]), torch.Generator().manual_seed(3))
    mask = params["apply"]
    assert 0 < int(mask.sum()) < len(x)
    out = op.apply(x, params)
    assert torch.equal(out[~mask], x[~mask])
    assert not torch.equal(out[mask], x[mask])


@pytest.mark.parametrize("name", list(OPS))
def test_outputs_stay_in_unit_range_and_finite(name: str) -> None:
    x = _x()
    out = make_op(name, p=1.0, **ACTIVE[name])(x, torch.Generator().manual_seed(1))
    assert torch.isfinite(out).all()
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert out.dtype == torch.float32


@pytest.mark.parametrize("name", list(OPS))
def test_same_seed_same_output_and_different_seed_differs(name: str) -> None:
    x = _x()
    op = make_op(name, p=0.7, **ACTIVE[name])
    a = op(x, torch.Generator().manual_seed(11))
    b = op(x, torch.Generator().manual_seed(11))
    assert torch.equal(a, b)
    if name not in ("grayscale", "equalize", "intensity_normalize", "center_crop", "resize",
                    "albumentations"):
        c = op(x, torch.Generator().manual_seed(12))
        assert not torch.equal(a, c)


@pytest.mark.parametrize("name", list(OPS))
def test_a_shard_gets_exactly_its_share_of_the_batch(name: str) -> None:
    """apply(x[idx], params[idx]) == apply(x, params)[idx]: the DDP contract."""
    x = _x(n=10)
    op = make_op(name, p=0.6, **ACTIVE[name])
    params = op.sample(len(x), tuple(x.shape[1:]), torch.Generator().manual_seed(4))
    full = op.apply(x, params)
    idx = torch.tensor([7, 1, 4])
    part = op.apply(x[idx], {k: v[idx] for k, v in params.items()})
    torch.testing.assert_close(part, full[idx], atol=1e-6, rtol=0)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("name", ["stain_jitter", "gaussian_blur", "channel_dropout", "rotate"])
def test_empirical_application_rate_matches_p(name: str, p: float) -> None:
    op = make_op(name, p=p, **ACTIVE[name])
    n = 4000
    mask = op.sample(n, (3, 8, 8), torch.Generator().manual_seed(9))["apply"]
    rate = float(mask.float().mean())
    sd = (p * (1 - p) / n) ** 0.5
    assert abs(rate - p) < 4 * sd


def test_flip_rate_per_axis_matches_p() -> None:
    op = make_op("flip", horizontal=True, vertical=True, p=0.3)
    params = op.sample(4000, (1, 4, 4), torch.Generator().manual_seed(2))
    for key in ("horizontal", "vertical"):
        assert abs(float(params[key].float().mean()) - 0.3) < 0.03
    # independent axes: both flipped with probability p²
    both = float((params["horizontal"] & params["vertical"]).float().mean())
    assert abs(both - 0.09) < 0.02


def test_per_sample_parameters_are_independent_across_the_batch() -> None:
    op = make_op("stain_jitter", brightness=[0.5, 1.5], contrast=[0.5, 1.5], p=1.0)
    params = op.sample(2000, (3, 4, 4), torch.Generator().manual_seed(0))
    b = params["brightness"]
    assert b.unique().numel() > 1900  # no sharing between samples or channels
    # neighbouring samples are uncorrelated, channels are uncorrelated
    r_samples = torch.corrcoef(torch.stack([b[:-1, 0], b[1:, 0]]))[0, 1]
    r_channels = torch.corrcoef(torch.stack([b[:, 0], b[:, 1]]))[0, 1]
    assert abs(float(r_samples)) < 0.1 and abs(float(r_channels)) < 0.1
    # uniform on [0.5, 1.5]: mean 1, variance 1/12
    assert abs(float(b.mean()) - 1.0) < 0.02
    assert abs(float(b.var()) - 1 / 12) < 0.01


def test_fixed_amplitude_range_gives_exactly_that_value() -> None:
    op = make_op("stain_jitter", brightness=[1.5, 1.5], contrast=[1.0, 1.0], p=1.0)
    params = op.sample(16, (3, 4, 4), torch.Generator().manual_seed(0))
    assert torch.all(params["brightness"] == 1.5)
    assert torch.all(params["contrast"] == 1.0)


def test_channel_support_descriptions() -> None:
    assert ChannelSupport().allows(1) and ChannelSupport().allows(7)
    assert not OPS["color_jitter"].channels.allows(1)
    assert OPS["color_jitter"].channels.allows(3)
    assert not OPS["channel_dropout"].channels.allows(1)
    assert "RGB" in OPS["grayscale"].channels.describe()
    assert "2 or more" in OPS["channel_dropout"].channels.describe()


@pytest.mark.parametrize("name", [n for n in OPS if n != "albumentations"])
def test_ops_run_on_a_meta_free_device_agnostic_path(name: str) -> None:
    """Parameters drawn on one device can be applied after moving them (as on a GPU)."""
    x = _x(n=4)
    op = make_op(name, p=1.0, **ACTIVE[name])
    params = op.sample(4, tuple(x.shape[1:]), torch.Generator().manual_seed(0), "cpu")
    moved = {k: v.to("cpu").clone() for k, v in params.items()}
    torch.testing.assert_close(op.apply(x, moved), op.apply(x, params))
