"""Known answers for nucleus finding, mask labelling and centre matching on synthetic discs."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from bioaug.data.images import label_centres, read_labels
from bioaug.data.segmentation import (
    MatchResult,
    border_labels,
    find_nuclei,
    label_objects,
    match_centres,
    otsu_threshold,
    split_touching,
    total,
)
from bioaug.errors import ConfigError, DataError


def discs(shape: tuple[int, int], centres: list[tuple[float, float]], radius: float,
          value: float = 0.8) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    img = np.zeros(shape, np.float32)
    for cy, cx in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = value
    return img


def test_otsu_threshold_separates_two_levels() -> None:
    values = np.r_[np.full(900, 0.1), np.full(100, 0.9)]
    assert 0.1 <= otsu_threshold(values) < 0.9
    assert otsu_threshold(np.full(10, 0.5)) == pytest.approx(0.5 + 1e-6)
    assert otsu_threshold(np.zeros(0)) == pytest.approx(1e-6)


def test_find_nuclei_counts_discs_and_drops_cut_ones() -> None:
    inner = [(30.0, 40.0), (80.0, 100.0), (60.0, 150.0)]
    img = discs((120, 200), [*inner, (3.0, 60.0), (100.0, 197.0)], 9.0)  # two cut by the edge
    centres, areas = find_nuclei(img, 0.3, sigma=1.0)
    assert len(centres) == 3 and (areas > 200).all()
    order = np.argsort(centres[:, 1])
    np.testing.assert_allclose(centres[order], inner, atol=0.5)
    kept, _ = find_nuclei(img, 0.3, sigma=1.0, exclude_border=False)
    assert len(kept) == 5


def test_find_nuclei_size_limits() -> None:
    img = discs((100, 160), [(50.0, 40.0)], 5.0) + discs((100, 160), [(50.0, 110.0)], 25.0)
    small_r5 = np.pi * 25  # about 80 px
    big_r25 = np.pi * 625  # about 1960 px
    c, _ = find_nuclei(img, 0.3, sigma=0.0, min_area=int(small_r5) + 20, max_area=5000)
    assert len(c) == 1 and c[0, 1] == pytest.approx(110.0, abs=0.5)
    c, _ = find_nuclei(img, 0.3, sigma=0.0, min_area=10, max_area=int(big_r25) - 200,
                       split=False)
    assert len(c) == 1 and c[0, 1] == pytest.approx(40.0, abs=0.5)
    assert len(find_nuclei(np.zeros((20, 20), np.float32), 0.5)[0]) == 0


def test_split_touching_cuts_two_discs_at_the_neck() -> None:
    from scipy import ndimage

    # a touching pair and two single nuclei (the median object is a single nucleus)
    img = discs((60, 160), [(30.0, 30.0), (30.0, 47.0), (30.0, 95.0), (30.0, 135.0)], 9.5)
    labels, n = ndimage.label(img > 0.3)
    assert n == 3
    split, m = split_touching(labels, n, min_area=50, max_area=5000)
    assert m == 4
    assert set(np.unique(split[30, 20:58])) == {0, 1, 4}  # the pair is now two objects


def test_border_labels() -> None:
    lab = np.zeros((5, 6), np.int64)
    lab[0, 2], lab[2, 2], lab[4, 5], lab[2, 0] = 1, 2, 3, 4
    assert border_labels(lab).tolist() == [1, 3, 4]


def test_label_objects_binary_and_label_images() -> None:
    binary = np.zeros((10, 12), np.uint8)
    binary[1:3, 1:3] = 255
    binary[3, 3] = 255  # touches the first diagonally: same object (8-connectivity)
    binary[6:9, 6:10] = 255
    lab = label_objects(binary)
    assert lab.dtype == np.int64 and lab.max() == 2
    assert lab[3, 3] == lab[1, 1] != lab[7, 7]
    np.testing.assert_array_equal(label_objects(binary > 0), lab)
    labelled = np.zeros((4, 4), np.uint16)
    labelled[0, 0], labelled[0, 1], labelled[3, 3] = 5, 7, 7  # touching labels stay apart
    np.testing.assert_array_equal(label_objects(labelled), labelled.astype(np.int64))
    assert label_objects(np.zeros((3, 3), np.uint8)).max() == 0


def test_read_labels_labels_a_binary_tiff(tmp_path) -> None:
    mask = (discs((50, 80), [(20.0, 20.0), (25.0, 60.0)], 6.0) > 0).astype(np.uint8) * 255
    tifffile.imwrite(tmp_path / "m.tiff", mask)
    centres, areas = label_centres(read_labels(tmp_path / "m.tiff"))
    np.testing.assert_allclose(centres, [[20.0, 20.0], [25.0, 60.0]], atol=1e-9)
    assert areas.tolist() == [int((mask > 0)[:, :40].sum()), int((mask > 0)[:, 40:].sum())]
    tifffile.imwrite(tmp_path / "neg.tiff", np.array([[-1, 0], [0, 2]], np.int16))
    with pytest.raises(DataError, match="negative"):
        read_labels(tmp_path / "neg.tiff")


def test_match_centres_known_answer() -> None:
    ref = np.array([[10.0, 10.0], [50.0, 50.0], [90.0, 90.0], [10.0, 90.0]])
    # found within 3 px; found by a detection 4.9 px away; missed; missed (7 px away)
    det = np.array([[13.0, 10.0], [50.0, 54.9], [10.0, 97.0], [60.0, 10.0]])
    r = match_centres(ref, det, radius=5.0)
    assert (r.n_reference, r.n_detected, r.reference_found, r.detected_confirmed) == (4, 4, 2, 2)
    assert r.recall == 0.5 and r.precision == 0.5 and r.pairs == 2
    assert r.median_offset == pytest.approx((3.0 + 4.9) / 2)
    r7 = match_centres(ref, det, radius=7.0)
    assert r7.recall == 0.75 and r7.precision == 0.75


def test_match_centres_one_to_one() -> None:
    # one detection between two reference centres: both are "found", but one pair only
    r = match_centres(np.array([[0.0, 0.0], [0.0, 6.0]]), np.array([[0.0, 3.0]]), 5.0)
    assert r.recall == 1.0 and r.precision == 1.0 and r.pairs == 1
    # the assignment prefers more pairs over shorter ones
    ref = np.array([[0.0, 0.0], [0.0, 8.0]])
    det = np.array([[0.0, 4.0], [0.0, 12.0]])
    r = match_centres(ref, det, 5.0)
    assert r.pairs == 2 and sorted(r.offsets) == [4.0, 4.0]


def test_match_centres_empty_and_errors() -> None:
    r = match_centres(np.zeros((0, 2)), np.array([[1.0, 1.0]]))
    assert r.recall == 1.0 and r.precision == 0.0 and r.pairs == 0
    assert np.isnan(r.median_offset)
    assert match_centres([], []).precision == 1.0
    with pytest.raises(DataError, match=r"\(n, 2\)"):
        match_centres(np.zeros((3, 3)), np.zeros((1, 2)))
    with pytest.raises(ConfigError, match="radius"):
        match_centres(np.zeros((1, 2)), np.zeros((1, 2)), radius=0)


def test_total_adds_counts() -> None:
    a = match_centres(np.array([[0.0, 0.0]]), np.array([[0.0, 1.0], [40.0, 40.0]]))
    b = match_centres(np.array([[0.0, 0.0], [30.0, 30.0]]), np.array([[0.0, 2.0]]))
    t = total([a, b])
    assert isinstance(t, MatchResult)
    assert (t.n_reference, t.n_detected, t.reference_found, t.detected_confirmed, t.pairs) == \
        (3, 3, 2, 2, 2)
    assert t.offsets == (1.0, 2.0)
    with pytest.raises(ConfigError, match="radii"):
        total([a, match_centres(np.zeros((1, 2)), np.zeros((1, 2)), radius=3.0)])


def test_nuclei_threshold_is_otsu_of_the_scaled_samples() -> None:
    from bioaug.data.segmentation import nuclei_threshold, otsu_threshold

    samples = np.concatenate([np.full(50, 110.0), np.full(50, 190.0)])
    # scaled with lo=100, hi=200: two classes at 0.1 and 0.9, Otsu between them
    t = nuclei_threshold(samples, 100.0, 200.0)
    assert 0.1 <= t < 0.9
    assert t == otsu_threshold(np.concatenate([np.full(50, 0.1), np.full(50, 0.9)]))
    assert nuclei_threshold(np.array([500.0]), 100.0, 200.0) == 1.0 + 1e-6  # clipped, constant
