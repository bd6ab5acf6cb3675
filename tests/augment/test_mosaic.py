"""The batch mosaic drawn straight to PNG: pixel values are known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bioaug.augment.mosaic import _GAP, _GROUP_GAP, _HEAD, TILE, is_rgb, write_mosaic
from bioaug.io import is_bioaug_png


def test_gray_panels_per_channel_hold_the_exact_values(tmp_path):
    x = torch.rand(3, 2, 8, 8)
    x[0, 0, 0, 0] = 1.7  # clipped, not rescaled
    x[0, 1, 0, 0] = -0.3
    view = 1.0 - x
    out = write_mosaic(tmp_path / "m.png", [("original", x), ("view 1", view)],
                       ["DAPI", "Actin"], rows=2, title="t")
    assert is_bioaug_png(out)
    img = np.asarray(Image.open(out))
    assert img.ndim == 2  # gray
    side = TILE  # 8 px tiles enlarged ×8 to 64
    group = 2 * side + _GAP
    assert img.shape == (_HEAD + 2 * side + _GAP, 2 * group + _GROUP_GAP)
    for r in range(2):
        for col, batch in enumerate((x, view)):
            for c in range(2):
                y0 = _HEAD + r * (side + _GAP)
                x0 = col * (group + _GROUP_GAP) + c * (side + _GAP)
                tile = img[y0:y0 + side, x0:x0 + side]
                want = np.rint(np.clip(batch[r, c].numpy(), 0, 1) * 255).astype(np.uint8)
                assert np.array_equal(tile[::8, ::8], want)
                assert np.array_equal(tile, np.kron(want, np.ones((8, 8), np.uint8)))
    assert img[_HEAD + 5, side] == 255  # the gap between the two channel panels


def test_rgb_is_drawn_in_colour_and_smaller_views_are_centred(tmp_path):
    assert is_rgb(["red", "green", "blue"]) and is_rgb(["R", "G", "B"])
    assert not is_rgb(["DAPI", "Tubulin", "Actin"])
    x = torch.zeros(1, 3, 32, 32)
    x[:, 0] = 1.0  # pure red
    small = torch.ones(1, 3, 16, 16) * 0.5
    out = write_mosaic(tmp_path / "c.png", [("original", x), ("view 1", small)],
                       ["red", "green", "blue"])
    img = np.asarray(Image.open(out).convert("RGB"))
    tile = img[_HEAD:_HEAD + TILE, :TILE]
    assert (tile == [255, 0, 0]).all()
    x0 = TILE + _GROUP_GAP
    view = img[_HEAD:_HEAD + TILE, x0:x0 + TILE]
    # 16 px enlarged ×4 fills the 64 px tile; a 24 px view would be ×2 and centred
    assert (view == 128).all()
    odd = write_mosaic(tmp_path / "o.png", [("a", torch.ones(1, 3, 64, 64)),
                                            ("b", torch.ones(1, 3, 24, 24))],
                       ["r", "g", "b"])
    v = np.asarray(Image.open(odd).convert("L"))[_HEAD:_HEAD + 64, 64 + _GROUP_GAP:]
    assert (v[8:56, 8:56] == 255).all() and (v[:8] == 0).all() and (v[:, :8] == 0).all()


def test_needs_a_column(tmp_path):
    with pytest.raises(ValueError, match="at least one column"):
        write_mosaic(tmp_path / "e.png", [], ["a"])
