"""Embeddings of a crop store as AnnData: trained checkpoints, baselines, raw pixels.

``embed(checkpoints, data)`` → AnnData with ``obsm["X_bioaug"]``; ``aggregate(adata,
"well"|"treatment")`` → profile AnnData; ``write_h5ad(adata, path)`` writes atomically;
``merge_shards`` / ``merge_files`` join the shards of a sharded embed.
"""

from __future__ import annotations

from bioaug.callable_package import make_callable
from bioaug.embed.aggregate import aggregate
from bioaug.embed.embed import embed
from bioaug.embed.io import write_h5ad
from bioaug.embed.merge import merge_files, merge_shards

__all__ = ["aggregate", "embed", "merge_files", "merge_shards", "write_h5ad"]


make_callable(__name__, embed)
