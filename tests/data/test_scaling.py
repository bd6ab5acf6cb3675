"""Per plate and channel intensity scaling: known answers."""

from __future__ import annotations

import numpy as np

from bioaug.data.scaling import percentile_bounds, sample_positions, scale_intensity, to_uint16


def test_percentile_bounds_per_channel() -> None:
    values = np.stack([np.arange(101.0), 10 * np.arange(101.0)])
    lo, hi = percentile_bounds(values, (1, 99))
    np.testing.assert_allclose(lo, [1, 10])
    np.testing.assert_allclose(hi, [99, 990])


def test_bounds_map_to_zero_and_one_and_uint16_rounds() -> None:
    image = np.array([[[1.0, 50.0, 99.0, 200.0]]])
    scaled = scale_intensity(image, np.array([1.0]), np.array([99.0]))
    np.testing.assert_allclose(scaled[0, 0], [0.0, 0.5, 1.0, 1.0])
    assert to_uint16(np.array([0.0, 0.5, 1.0, 2.0])).tolist() == [0, 32768, 65535, 65535]


def test_sample_positions_depend_on_the_field_size_only() -> None:
    a = sample_positions((64, 80), n=100)
    assert len(np.unique(a)) == 100 and (np.diff(a) > 0).all() and a.max() < 64 * 80
    np.testing.assert_array_equal(a, sample_positions((64, 80), n=100))
    assert not np.array_equal(a, sample_positions((80, 64), n=100))
