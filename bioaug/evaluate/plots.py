"""Pictures of an evaluation (PNG, matplotlib Agg): UMAP, confusion matrix, per-class bars.

UMAP (McInnes et al., 2018) is computed on a seeded uniform subsample (``max_points``,
default 5,000; 200 optimisation epochs) of the PCA-reduced representation: it is a picture,
and its cost grows with the number of points, not with what it shows. The default engine,
``"numpy"``, lays out scanpy's fuzzy kNN graph (:mod:`bioaug.evaluate.neighbors`) with the
vectorised optimiser of :mod:`bioaug.evaluate.layout` and so needs no numba compile;
``"umap-learn"`` runs umap-learn itself (~15–20 s of compile in each new process).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bioaug.io import atomic_path

DEFAULT_UMAP_POINTS = 5_000


def _umap_numpy(x: np.ndarray, n_neighbors: int, seed: int) -> np.ndarray:
    from bioaug.evaluate.layout import umap_layout
    from bioaug.evaluate.neighbors import exact_knn, fuzzy_connectivities

    indices, distances = exact_knn(x, n_neighbors)
    return umap_layout(x, fuzzy_connectivities(indices, distances), n_epochs=200, seed=seed)


def _umap_learn(x: np.ndarray, n_neighbors: int, seed: int) -> np.ndarray:
    import umap

    reducer = umap.UMAP(n_neighbors=n_neighbors, random_state=seed, n_jobs=1, n_epochs=200,
                        init="spectral" if len(x) > 10 else "random")
    return np.asarray(reducer.fit_transform(x))


#: UMAP implementations by name: (x, n_neighbors, seed) -> (n, 2) coordinates.
UMAP_ENGINES = {"numpy": _umap_numpy, "umap-learn": _umap_learn}


def umap_coords(x: np.ndarray, *, max_points: int = DEFAULT_UMAP_POINTS, seed: int = 0,
                n_neighbors: int = 15, engine: str = "numpy") -> tuple[np.ndarray, np.ndarray]:
    """2-D UMAP of a seeded subsample; returns (coords, indices of the items drawn).

    Parameters
    ----------
    x
        ``(n, d)`` representation.
    max_points
        Items drawn (uniformly, seeded) when there are more.
    seed
        Seed of the subsample and of the layout.
    n_neighbors
        kNN graph size (capped below the number of items).
    engine
        A key of :data:`UMAP_ENGINES`.
    """
    if engine not in UMAP_ENGINES:
        from bioaug.errors import ConfigError, did_you_mean

        raise ConfigError(f"unknown UMAP engine {engine!r}{did_you_mean(engine, UMAP_ENGINES)};"
                          f" valid: {', '.join(UMAP_ENGINES)}")
    n = len(x)
    idx = np.arange(n)
    if n > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    k = min(n_neighbors, max(2, len(idx) - 1))
    coords = UMAP_ENGINES[engine](np.asarray(x, dtype=np.float32)[idx], k, seed)
    return np.asarray(coords), idx


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _palette(n: int) -> list[Any]:
    cmap = plt.get_cmap("tab20" if n > 10 else "tab10")
    return [cmap(i % cmap.N) for i in range(n)]


def plot_embedding(coords: np.ndarray, values: np.ndarray, path: Path, *, title: str) -> Path:
    """Scatter of 2-D coordinates coloured by a categorical column, legend outside."""
    values = np.asarray(values).astype(str)
    cats = sorted(np.unique(values).tolist())
    fig, ax = plt.subplots(figsize=(7.5, 6))
    size = max(1.0, min(20.0, 20000.0 / max(len(values), 1)))
    for cat, colour in zip(cats, _palette(len(cats)), strict=True):
        m = values == cat
        ax.scatter(coords[m, 0], coords[m, 1], s=size, color=colour, label=cat,
                   linewidths=0, alpha=0.8, rasterized=True)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")
    if len(cats) <= 40:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, markerscale=3,
                  frameon=False)
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, classes: list[str], path: Path, *, title: str) -> Path:
    """Row-normalised confusion matrix (rows = true class) with counts in the cells."""
    cm = np.asarray(matrix, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * k, 0.8 + 0.45 * k))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 25:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_title(title)
    return _save(fig, path)


def plot_per_class(accuracy: dict[str, float | None], path: Path, *, title: str,
                   overall: float | None = None) -> Path:
    """Horizontal bars of per-class accuracy (classes absent from the test set are skipped)."""
    items = [(k, v) for k, v in accuracy.items() if v is not None]
    items.sort(key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 0.3 * max(len(items), 1)))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#4C72B0")
    if overall is not None:
        ax.axvline(overall, color="black", linestyle="--", linewidth=1,
                   label=f"overall {overall:.3f}")
        ax.legend(loc="lower right", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title)
    return _save(fig, path)


def plot_layers(scores: dict[str, dict[str, float | None]], path: Path, *, title: str,
                titles: dict[str, str] | None = None, default: str | None = None) -> Path:
    """Metric per layer: one line per metric over the layers in depth order.

    ``scores`` maps layer → metric → value (None where the metric is absent). The
    ``default`` layer (the one in ``X_bioaug``), when it is not itself one of the probed
    depths, is drawn as a dotted horizontal line in its metric's colour.
    """
    depth = [layer for layer in scores if layer != default]
    metrics = [m for m in next(iter(scores.values()))
               if any(scores[layer].get(m) is not None for layer in scores)]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 0.55 * len(depth)), 4.2))
    for metric, colour in zip(metrics, _palette(len(metrics)), strict=True):
        name = (titles or {}).get(metric, metric)
        values = [np.nan if scores[layer].get(metric) is None else scores[layer][metric]
                  for layer in depth]
        ax.plot(range(len(depth)), values, marker="o", color=colour, label=name)
        if default is not None and scores[default].get(metric) is not None:
            ax.axhline(float(scores[default][metric]), color=colour, linestyle=":",
                       linewidth=1)
    ax.set_xticks(range(len(depth)), depth, rotation=45 if len(depth) > 6 else 0)
    ax.set_xlabel("layer (input → output)")
    ax.set_ylabel("score")
    ax.set_title(title + (f"\n(dotted: default layer {default})" if default else ""))
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    return _save(fig, path)


def report_figures(x: np.ndarray, obs: Any, y: np.ndarray, report: Any, out_dir: Path, *,
                   seed: int, max_dims: int, umap_points: int, label: str) -> dict[str, str]:
    """The pictures of an evaluation report, drawn into ``out_dir``: name → file name.

    UMAP coloured by the label (and the batch when there is one), the linear probe's
    confusion matrix and per-class accuracy, the metric per layer of a ``--layer all``
    embedding and the NSC accuracy per MoA.
    """
    from bioaug.evaluate.clustering import reduce_dims
    from bioaug.evaluate.metrics import metric_title

    figs: dict[str, str] = {}
    coords, idx = umap_coords(reduce_dims(x, max_dims, seed)[0], max_points=umap_points,
                              seed=seed)
    n = len(idx)
    figs["umap_label"] = plot_embedding(
        coords, y[idx], out_dir / "umap_label.png",
        title=f"UMAP coloured by {label} ({n} of {len(x)} items)").name
    if "batch" in obs.columns:
        figs["umap_batch"] = plot_embedding(
            coords, obs["batch"].astype(str).to_numpy()[idx], out_dir / "umap_batch.png",
            title=f"UMAP coloured by batch ({n} of {len(x)} items)").name
    lin = report["linear"]
    figs["confusion"] = plot_confusion(
        np.asarray(lin["confusion_matrix"]), lin["classes"], out_dir / "confusion.png",
        title=f"Linear probe, test split ({lin['n_test']} items)").name
    figs["per_class"] = plot_per_class(
        lin["per_class"], out_dir / "per_class_accuracy.png",
        title=f"Per-class linear accuracy ({lin['n_test']} test items)",
        overall=lin["accuracy"]).name
    block = report.get("layers")
    if block:
        figs["layers"] = plot_layers(
            block["scores"], out_dir / "layers.png", default=block["default"],
            titles={m: metric_title(m) for m in block["metrics"]},
            title=f"Metric per layer ({len(block['scores']) - 1} probed layers)").name
    prof = report.get("profiling")
    if prof and prof.get("nsc"):
        acc = {k: v["accuracy"] for k, v in prof["nsc"]["per_class"].items()}
        figs["nsc_per_class"] = plot_per_class(
            acc, out_dir / "nsc_per_moa.png",
            title=f"NSC 1-NN accuracy per MoA ({prof['nsc']['n_scored']} treatments)",
            overall=prof["nsc"]["accuracy"]).name
    return figs
