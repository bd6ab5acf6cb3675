from __future__ import annotations

import numpy as np
import pytest

from bioaug.errors import ConfigError
from bioaug.evaluate import plots
from tests.evaluate.conftest import blobs


def test_umap_coords_subsamples_and_is_seeded():
    x, _ = blobs(50, 4, 8, spread=4.0, seed=0)
    coords, idx = plots.umap_coords(x, max_points=120, seed=1)
    assert coords.shape == (120, 2) and len(np.unique(idx)) == 120
    assert np.all(np.diff(idx) > 0)
    again, idx2 = plots.umap_coords(x, max_points=120, seed=1)
    assert np.array_equal(idx, idx2) and np.array_equal(coords, again)


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(ConfigError, match="umap-learn"):
        plots.umap_coords(np.zeros((20, 3), np.float32), engine="umap_learn")


def test_plot_embedding_writes_a_png(tmp_path):
    x, y = blobs(30, 3, 5, spread=5.0, seed=1)
    coords, idx = plots.umap_coords(x)
    path = plots.plot_embedding(coords, y[idx], tmp_path / "u.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_layers_writes_a_png(tmp_path):
    scores = {"backbone": {"leiden_ami": 0.5, "nsc": None},
              "stage1": {"leiden_ami": 0.3, "nsc": None},
              "stage2": {"leiden_ami": 0.7, "nsc": None}}
    path = plots.plot_layers(scores, tmp_path / "layers.png", title="t", default="backbone",
                             titles={"leiden_ami": "Leiden AMI"})
    assert path.read_bytes()[:4] == b"\x89PNG"
