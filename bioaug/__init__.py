"""bioaug: augmentation protocols, self-supervised training and phenotype evaluation.

The package is a one-way flow of stages (see the README):
``data`` → ``augment`` → ``models`` + ``methods`` → ``train`` → ``embed`` → ``evaluate``,
with ``study`` orchestrating them. The command line (``bioaug.cli``) is a thin layer on
top of the Python API exposed here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "embed", "evaluate"]


def embed(
    checkpoints: Sequence[str | os.PathLike] | str | os.PathLike = (),
    data: str | os.PathLike | Any | None = None,
    *,
    layer: str | None = None,
    batch_size: int = 256,
    backbone: str | None = None,
    raw: bool = False,
    device: str = "auto",
    aggregate: str | None = None,
    preprocess: str = "resize",
    backbone_kwargs: dict[str, Any] | None = None,
    raw_size: int = 16,
    seed: int = 0,
    work_dir: str | os.PathLike | None = None,
    shard: tuple[int, int] | str | None = None,
) -> Any:
    """Embed every item of a crop store; one row per item, as AnnData.

    The features come from exactly one source: trained ``checkpoints``, a named
    ``backbone``, or ``raw`` pixels. Results follow scanpy's conventions, so the object
    goes straight into ``sc.pp.neighbors(adata, use_rep="X_bioaug")``.

    Parameters
    ----------
    checkpoints
        One or more training run directories or ``checkpoint.pt`` files. With several,
        each model's embedding is in ``obsm["X_bioaug_<i>"]`` and their fusion (the
        concatenation of L2-normalised embeddings, Ericsson et al., BMVC 2022) in
        ``obsm["X_bioaug_fused"]``.
    data
        The crop store (a path made by ``bioaug data prepare``, or an open ``Store``).
    layer
        ``"backbone"`` (pooled encoder output, the usual evaluation layer),
        ``"feature_map"`` (the last convolutional map before pooling, flattened) or
        ``"projection"`` (projection-head output, checkpoints only). ``None`` (default):
        the layer each model's backbone declares (:func:`bioaug.models.default_embed_layer`);
        ``uns["bioaug"]["layer"]`` and ``["layer_source"]`` record the choice.
    batch_size
        Items per forward pass; memory is bounded by it.
    backbone
        A registered backbone name instead of checkpoints: ``"resnet101_supervised"`` is
        the supervised ImageNet baseline (weights read from disk), any other is embedded
        with seeded random weights.
    raw
        Embed raw pixels (each channel area-averaged to ``raw_size`` × ``raw_size``).
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.
    aggregate
        ``"well"`` (mean of cells per plate and well) or ``"treatment"`` (median of well
        means per compound and concentration): return these profiles instead of cells.
        Checked against the store's columns before any work.
    preprocess
        How items reach a checkpoint's training crop size: ``"resize"`` (default),
        ``"center_crop"`` or ``"none"``.
    backbone_kwargs
        Extra arguments for the named ``backbone`` (e.g. ``{"weights": "r101.pth"}``).
    raw_size
        Side of the area-averaged raw-pixel image.
    seed
        Seed of a random-weight backbone.
    work_dir
        A folder for resumable progress; an interrupted call continues from the last
        committed batch. The caller removes it once the result is saved.
    shard
        ``(i, n)`` or ``"i/n"``: embed only the ``i``-th of ``n`` contiguous blocks of
        items, for array jobs; join the shards with :func:`bioaug.embed.merge_files`.

    Returns
    -------
    AnnData
        ``obs``: the store's metadata (categoricals); ``obsm["X_bioaug"]``: the embedding;
        ``uns["bioaug"]``: provenance (models, store, settings, shard).

    Raises
    ------
    bioaug.errors.BioaugError
        For any mistake in the inputs (one clear message), including NaN or infinite
        pixels or features, named by item.

    Examples
    --------
    >>> import bioaug, scanpy as sc  # doctest: +SKIP
    >>> cells = bioaug.embed("runs/moco", "stores/bbbc021")  # doctest: +SKIP
    >>> sc.pp.neighbors(cells, use_rep="X_bioaug")  # doctest: +SKIP
    """
    from bioaug.embed import embed as _embed

    return _embed(checkpoints, data, layer=layer, batch_size=batch_size, backbone=backbone,
                  raw=raw, device=device, aggregate=aggregate, preprocess=preprocess,
                  backbone_kwargs=backbone_kwargs, raw_size=raw_size, seed=seed,
                  work_dir=work_dir, shard=shard)


def evaluate(
    adata_or_path: Any,
    *,
    label: str = "moa",
    rep: str = "X_bioaug",
    out: str | os.PathLike | None = None,
    seed: int = 0,
    profiling_mode: str = "auto",
    linear_group: str | None = "auto",
    test_size: float = 0.2,
    max_dims: int = 50,
    n_neighbors: int = 15,
    silhouette_sample: int = 10_000,
    umap_points: int = 5_000,
    max_train: int | None = 50_000,
    plot: bool = True,
    leiden_max_tries: int = 20,
    exclude: Sequence[str] = (),
    profile: Any = None,
    null_size: int = 1000,
) -> Any:
    """Score an embedding against a label: clustering, profiling with mAP, linear probe.

    Every option is checked before any expensive step. Results keep scanpy's habits: the
    kNN graph is ``sc.pp.neighbors(use_rep=rep)`` and Leiden runs with the igraph flavour.

    Parameters
    ----------
    adata_or_path
        AnnData, an ``.h5ad`` path (``bioaug embed`` / ``bioaug profile``), or a
        ``.parquet`` / ``.csv`` profile table with ``Metadata_*`` columns.
    label
        ``obs`` column of the classes (``"moa"``; natural images: ``"label"``).
    rep
        ``obsm`` key of the representation (``"X_bioaug"``, ``"X_bioaug_fused"``, ``"X"``).
    out
        Report directory (``report.json``, ``report.md``, PNGs); None writes nothing.
    seed
        Seed of every random step.
    profiling_mode
        ``"auto"`` (profile when plate/well/compound/concentration/batch exist; say why
        not otherwise), ``"on"`` (an error, up front, when it cannot be scored), ``"off"``.
    linear_group
        Column grouping the linear probe's split (``"auto"``: the compound when present).
    test_size
        Held-out fraction of the linear probe.
    max_dims
        PCA width before the kNN graph and k-means.
    n_neighbors
        Neighbours of the kNN graph.
    silhouette_sample
        Items used for the silhouette.
    umap_points
        Items drawn for the UMAP pictures.
    max_train
        Cap on the probe's training items.
    plot
        Write the PNG pictures (with ``out``).
    leiden_max_tries
        Leiden runs allowed to match the number of classes.
    exclude
        Label values left out of clustering and the probe (each must exist).
    profile
        Correction steps (``["center", "sphere"]``), a recipe YAML path or a
        :class:`bioaug.profile.ProfileConfig`: profiling is then reported before and after.
    null_size
        Permutations of the mAP null distribution.

    Returns
    -------
    bioaug.evaluate.EvaluationReport
        Typed blocks (``.clustering``, ``.profiling``, ``.linear`` …) and ``.metrics()``,
        the registered metrics by name.

    Raises
    ------
    bioaug.errors.BioaugError
        For any mistake in the inputs (one clear message).

    Examples
    --------
    >>> import bioaug  # doctest: +SKIP
    >>> report = bioaug.evaluate("cells.h5ad", label="moa", out="report/")  # doctest: +SKIP
    >>> report.metrics()["nscb"]  # doctest: +SKIP
    """
    from bioaug.evaluate import evaluate as _evaluate

    return _evaluate(adata_or_path, label=label, rep=rep, out=out, seed=seed,
                     profiling_mode=profiling_mode, linear_group=linear_group,
                     test_size=test_size, max_dims=max_dims, n_neighbors=n_neighbors,
                     silhouette_sample=silhouette_sample, umap_points=umap_points,
                     max_train=max_train, plot=plot, leiden_max_tries=leiden_max_tries,
                     exclude=exclude, profile=profile, null_size=null_size)
