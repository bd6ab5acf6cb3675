"""The transformation library: every entry builds, runs, keeps the shape; channel checks."""

from __future__ import annotations

import pytest
import torch

from bioaug.errors import ConfigError
from bioaug.study import invariance_library as lib
from bioaug.study.invariance import library_probes


def test_every_entry_builds_and_keeps_shape_on_rgb():
    transforms, notes = lib.select(None, 3)
    assert {t.name for t in transforms} == set(lib.LIBRARY)
    assert notes == []
    x = torch.rand(4, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    for probe in library_probes(transforms):
        y = probe.op(x, generator=torch.Generator().manual_seed(1))
        assert y.shape == x.shape, probe.name
        assert torch.isfinite(y).all(), probe.name


def test_fixed_amplitude_is_deterministic_where_it_should_be():
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    (rot,) = [p for p in library_probes([lib.LIBRARY["rotate90"]]) if p.amplitude == 1]
    torch.testing.assert_close(rot.op(x), torch.rot90(x, 1, dims=(2, 3)))
    (bright,) = [p for p in library_probes([lib.LIBRARY["brightness"]]) if p.amplitude == 0.5]
    torch.testing.assert_close(bright.op(x), x * 0.5)


def test_default_library_skips_unsupported_ops_with_a_note():
    transforms, notes = lib.select(None, 1)
    names = {t.name for t in transforms}
    assert "saturation" not in names and "grayscale" not in names
    assert "channel_dropout" not in names
    assert "rotate" in names and "blur" in names
    assert any("saturation" in n and "the data has 1" in n for n in notes)


def test_explicit_unsupported_op_is_an_error():
    with pytest.raises(ConfigError, match=r"'hue' \(op 'color_jitter'\) needs exactly 3 "
                                          r"channels.*the data has 4 channels"):
        lib.select(["rotate", "hue"], 4)
    with pytest.raises(ConfigError, match="did you mean 'rotate'"):
        lib.select(["rotat"], 3)


def test_describe_library_lists_everything():
    text = lib.describe_library()
    for name in lib.LIBRARY:
        assert name in text


def test_a_transformation_named_twice_is_an_error():
    with pytest.raises(ConfigError, match=r"transformation 'blur' is named twice \(positions 1 "
                                          r"and 3 of the list\)"):
        lib.select(["blur", "rotate90", "blur"], 1)
    chosen, _ = lib.select(["rotate90", "blur"], 1)
    assert [t.name for t in chosen] == ["rotate90", "blur"]
