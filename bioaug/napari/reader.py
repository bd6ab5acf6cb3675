"""Open a crop store in napari: its crops as a stack, one layer per channel.

Any directory that holds a store (``header.json`` and ``images.raw``) is taken; the crops
stay memory-mapped, so a large store opens at once. The ``obs`` table (one row per crop, in
stack order) and the header go into each layer's metadata (``obs``, ``bioaug_store``), and
``bioaug_scale`` records the dtype scale the preview reads the store with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bioaug.data.store import DTYPE_SCALE, Store, is_store
from bioaug.napari.layers import LayerData, channel_layers

PathLike = str | Path


def get_reader(path: PathLike | list[PathLike]) -> Callable[[PathLike], list[LayerData]] | None:
    """The store reader when ``path`` is a store directory, else None (another reader's)."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_store if is_store(path) else None


def store_layers(store: Store) -> list[LayerData]:
    """``store`` as layer data: ``(N, H, W)`` crops per channel, obs and header attached."""
    metadata = {"obs": store.obs, "bioaug_store": {"path": str(store.path), **store.header},
                "channels": store.channels}
    return channel_layers(store.images, 1, store.channels, store.path.name,
                          metadata=metadata, scale=DTYPE_SCALE[str(store.dtype)])


def read_store(path: PathLike) -> list[LayerData]:
    """Open the store at ``path`` (a :class:`~bioaug.errors.DataError` says what is wrong)."""
    return store_layers(Store.open(path))
