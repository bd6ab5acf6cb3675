"""Views laid out as one grid image."""

from __future__ import annotations

import numpy as np
import torch

from bioaug.napari.grid import GAP, grid_tile, tile_size, view_grid


def test_grid_puts_samples_down_and_views_across() -> None:
    views = [torch.rand(3, 2, 8, 8) for _ in range(2)]
    grid = view_grid(views)
    assert grid.shape == (2, 3 * 8 + 2 * GAP, 2 * 8 + GAP)
    for col, view in enumerate(views):
        for row in range(3):
            np.testing.assert_array_equal(grid_tile(grid, row, col, (8, 8), (8, 8)),
                                          view[row].numpy())
    assert (grid[:, 8:8 + GAP] == 0).all()  # the gap between rows


def test_small_views_sit_in_the_middle_and_values_are_clipped() -> None:
    big, small = torch.full((1, 1, 8, 8), 2.0), torch.full((1, 1, 4, 4), -1.0)
    grid = view_grid([big, small])
    assert tile_size([big, small]) == (8, 8)
    assert grid.max() == 1.0 and grid.min() == 0.0
    assert grid[0, 2:6, 8 + GAP + 2:8 + GAP + 6].sum() == 0  # the small view, clipped to 0
    view = torch.rand(1, 1, 4, 4)
    grid = view_grid([big, view])
    np.testing.assert_array_equal(grid_tile(grid, 0, 1, (4, 4), (8, 8)), view[0].numpy())
    assert grid[0, 0, 8 + GAP] == 0  # the tile's border outside the small view
