"""Properties every registered op must have: p=0 identity, p=1 applies, replayable,
sliceable.

The table of ops comes from the registry and each op's declared ``example`` parameters, so
an op registered anywhere (even inside a test, see ``test_a_dummy_op_...``) is covered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest
import torch

from bioaug.augment import OPS, make_op, parse_protocol
from bioaug.augment.ops import Op, OpParams, ops_by_group, register_op
from bioaug.augment.ops.base import ChannelSupport, uniform
from bioaug.augment.ops.params import Span


def active(name: str) -> dict[str, Any]:
    """Parameters that make op ``name`` visibly change an image (the op declares them)."""
    return dict(OPS[name].example)


def preserves_size(name: str) -> bool:
    # albumentations decides per transform (an instance property), its example keeps size
    return OPS[name].changes_size is not True


def _x(n: int = 8, c: int = 3, size: int = 24, seed: int = 5) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


# -- the properties, as functions of an op name -----------------------------------------
def check_example_validates(name: str) -> None:
    OPS[name].Params.model_validate(active(name))
    assert OPS[name].group and OPS[name].summary


def check_p0_is_identity(name: str) -> None:
    if not preserves_size(name):
        return
    x = _x()
    out = make_op(name, p=0.0, **active(name))(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, x)


def check_p1_changes_every_sample(name: str) -> None:
    x = _x()
    op = make_op(name, p=1.0, **active(name))
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


def check_unpicked_samples_pass_through_unchanged(name: str) -> None:
    if not preserves_size(name):
        return
    x = _x(n=12)
    op = make_op(name, p=0.5, **active(name))
    params = op.sample(len(x), tuple(x.shape[1:]), torch.Generator().manual_seed(3))
    mask = params["apply"]
    assert 0 < int(mask.sum()) < len(x)
    out = op.apply(x, params)
    assert torch.equal(out[~mask], x[~mask])
    assert not torch.equal(out[mask], x[mask])


def check_outputs_stay_in_unit_range_and_finite(name: str) -> None:
    x = _x()
    out = make_op(name, p=1.0, **active(name))(x, torch.Generator().manual_seed(1))
    assert torch.isfinite(out).all()
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert out.dtype == torch.float32


def check_same_seed_same_output_and_different_seed_differs(name: str) -> None:
    x = _x()
    op = make_op(name, p=0.7, **active(name))
    a = op(x, torch.Generator().manual_seed(11))
    b = op(x, torch.Generator().manual_seed(11))
    assert torch.equal(a, b)
    # with p = 1 the outputs of two seeds differ unless the op draws nothing but `apply`
    op1 = make_op(name, p=1.0, **active(name))
    draws = [op1.sample(len(x), tuple(x.shape[1:]), torch.Generator().manual_seed(s))
             for s in (11, 12)]
    random = any(not torch.equal(draws[0][k], draws[1][k]) for k in draws[0] if k != "apply")
    if random:
        assert not torch.equal(op1.apply(x, draws[0]), op1.apply(x, draws[1]))


def check_a_shard_gets_exactly_its_share_of_the_batch(name: str) -> None:
    """apply(x[idx], params[idx]) == apply(x, params)[idx]: the DDP contract."""
    x = _x(n=10)
    op = make_op(name, p=0.6, **active(name))
    params = op.sample(len(x), tuple(x.shape[1:]), torch.Generator().manual_seed(4))
    full = op.apply(x, params)
    idx = torch.tensor([7, 1, 4])
    part = op.apply(x[idx], {k: v[idx] for k, v in params.items()})
    torch.testing.assert_close(part, full[idx], atol=1e-6, rtol=0)


def check_parameters_survive_a_move(name: str) -> None:
    """Parameters drawn on one device can be applied after moving them (as on a GPU)."""
    if OPS[name].per_sample:
        return
    x = _x(n=4)
    op = make_op(name, p=1.0, **active(name))
    params = op.sample(4, tuple(x.shape[1:]), torch.Generator().manual_seed(0), "cpu")
    moved = {k: v.to("cpu").clone() for k, v in params.items()}
    torch.testing.assert_close(op.apply(x, moved), op.apply(x, params))


PROPERTIES: list[Callable[[str], None]] = [
    check_example_validates, check_p0_is_identity, check_p1_changes_every_sample,
    check_unpicked_samples_pass_through_unchanged, check_outputs_stay_in_unit_range_and_finite,
    check_same_seed_same_output_and_different_seed_differs,
    check_a_shard_gets_exactly_its_share_of_the_batch, check_parameters_survive_a_move,
]


@pytest.mark.parametrize("check", PROPERTIES, ids=lambda f: f.__name__[len("check_"):])
@pytest.mark.parametrize("name", list(OPS))
def test_every_registered_op_has_the_properties(name: str, check: Callable[[str], None]) -> None:
    check(name)


# -- one file makes an op: a dummy registered here is valid, listed and tested ------------
class _InvertParams(OpParams):
    strength: Span(0.0, 1.0, scalar="point") = (1.0, 1.0)


class _Invert(Op):
    """Blend each picked sample towards its negative: ``y = x + s·(1 − 2x)``."""

    name = "test_invert"
    Params = _InvertParams
    group = "test group"
    summary = "a test op: partial inversion"
    example: ClassVar[dict[str, Any]] = {"strength": [0.5, 1.0]}

    def sample_params(self, batch_size, image_shape, generator, device):
        return {"strength": uniform(self.params.strength, (batch_size,), generator, device)}

    def transform(self, x, params):
        s = params["strength"].to(x.device, x.dtype).view(-1, 1, 1, 1)
        return x + s * (1.0 - 2.0 * x)


@contextmanager
def registered(cls: type[Op]) -> Iterator[type[Op]]:
    register_op(cls)
    try:
        yield cls
    finally:
        OPS.pop(cls.name, None)


def test_a_dummy_op_is_valid_listed_and_covered_by_the_properties() -> None:
    from bioaug.augment.reference import groups_markdown, ops_markdown, ops_text, schema_json

    assert "test_invert" not in OPS
    with registered(_Invert):
        protocol = parse_protocol("bioaug_protocol: 1\nviews:\n  - crop_size: 8\n    steps:\n"
                                  "      - test_invert: {strength: 0.5, p: 0.5}\n")
        assert protocol.views[0].steps[0].op == "test_invert"
        assert "### `test_invert`" in ops_markdown()
        assert "test_invert: a test op: partial inversion" in ops_text()
        assert "| test group | `test_invert` |" in groups_markdown()
        assert '"op_test_invert"' in schema_json()
        assert ops_by_group()["test group"] == ["test_invert"]
        for check in PROPERTIES:
            check("test_invert")
    assert "test_invert" not in OPS


def test_the_property_checks_can_fail() -> None:
    """A broken op (changes unpicked samples, leaves [0, 1]) is caught by the checks."""

    class _Broken(_Invert):
        name = "test_broken"

        def apply(self, x, params, *, inplace=False):
            return x * 2.0 - 0.5

    with registered(_Broken):
        for check in (check_p0_is_identity, check_outputs_stay_in_unit_range_and_finite):
            with pytest.raises(AssertionError):
                check("test_broken")


def test_registering_checks_the_declarations() -> None:
    class _NoGroup(_Invert):
        name = "test_no_group"
        group = ""

    class _Taken(_Invert):
        name = "flip"

    with pytest.raises(TypeError, match="must declare `group`"):
        register_op(_NoGroup)
    with pytest.raises(TypeError, match="op name 'flip' is taken"):
        register_op(_Taken)
    assert OPS["flip"].__name__ == "Flip" and "test_no_group" not in OPS


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
@pytest.mark.parametrize("name", ["stain_jitter", "gaussian_blur", "channel_dropout", "rotate"])
def test_empirical_application_rate_matches_p(name: str, p: float) -> None:
    op = make_op(name, p=p, **active(name))
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


def test_every_op_is_applied_by_the_shared_plumbing() -> None:
    # picking samples, the compiled kernels (native_apply) and in-place writes live in
    # Op.apply; an op describes itself (transform, neutral, changes_size …) instead
    assert [name for name, cls in OPS.items() if cls.apply is not Op.apply] == []


@pytest.mark.parametrize("name", ["stain_jitter", "channel_dropout"])
def test_neutral_parameters_leave_unpicked_samples_untouched_in_one_pass(name,
                                                                        monkeypatch) -> None:
    monkeypatch.setenv("BIOAUG_NATIVE", "0")  # the torch path
    op = make_op(name, p=0.5, **OPS[name].example)
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    drawn = op.sample(16, (3, 8, 8), torch.Generator().manual_seed(1))
    picked = drawn["apply"]
    assert 0 < int(picked.sum()) < 16
    out = op.apply(x, drawn)
    own = x.clone()
    assert op.apply(own, drawn, inplace=True) is own          # written in place when allowed
    assert torch.equal(own, out)
    assert torch.equal(out[~picked], x[~picked])
    idx = picked.nonzero().squeeze(1)
    expected = op.transform(x[idx], {k: v[idx] for k, v in drawn.items()})
    torch.testing.assert_close(out[idx], expected, atol=1e-6, rtol=0)
