"""Embeddings of a crop store as AnnData: trained checkpoints, baselines, raw pixels.

``embed(checkpoints, data)`` → AnnData with ``obsm["X_bioaug"]``; ``aggregate(adata,
"well"|"treatment")`` → profile AnnData; ``write_h5ad(adata, path)`` writes atomically;
``merge_shards`` / ``merge_files`` join the shards of a sharded embed.
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any

from bioaug.embed.aggregate import aggregate
from bioaug.embed.embed import embed
from bioaug.embed.io import write_h5ad
from bioaug.embed.merge import merge_files, merge_shards

__all__ = ["aggregate", "embed", "merge_files", "merge_shards", "write_h5ad"]


class _CallablePackage(types.ModuleType):
    """Importing this package sets ``bioaug.embed`` to the package, hiding the function of
    the same name that ``bioaug`` exports; calling the package calls that function, so
    ``bioaug.embed(...)`` works before and after the import, with the same signature."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return embed(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
__signature__ = inspect.signature(embed)
