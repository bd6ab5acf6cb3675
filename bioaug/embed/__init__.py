"""Embeddings of a crop store as AnnData: trained checkpoints, baselines, raw pixels.

``embed(checkpoints, data)`` → AnnData with ``obsm["X_bioaug"]``; ``aggregate(adata,
"well"|"treatment")`` → profile AnnData; ``write_h5ad(adata, path)`` writes atomically.
"""

from __future__ import annotations

from bioaug.embed.aggregate import aggregate
from bioaug.embed.embed import embed
from bioaug.embed.io import write_h5ad

__all__ = ["aggregate", "embed", "write_h5ad"]
