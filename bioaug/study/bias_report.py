"""Draw and write the class-bias report of a sweep (``bioaug sweep report DIR``).

Writes into ``DIR/report/``:

- ``per_class.csv`` — per-class accuracy per parameter setting (mean, std over seeds);
- ``overall.csv`` — overall metrics per parameter setting;
- ``trends.csv`` — per axis and class: slope, change low → high, gains/loses/flat/unknown
  (unknown: the class has no accuracy at the lowest or highest value);
- ``bias_matrix.csv`` — inter-class correlation across runs;
- ``per_class_vs_param.png``, ``bias_heatmap.png``, ``overall_vs_per_class.png``;
- ``report.md`` — the tables and pictures with a short reading guide.

The numbers come from :mod:`bioaug.study.bias`; this module only draws and writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bioaug.io import atomic_path, atomic_write_text
from bioaug.study import bias


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def _write_csv(df: pd.DataFrame, path: Path, **kw: Any) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kw)


def _axis_xy(table: pd.DataFrame, axis: str) -> tuple[list[Any], np.ndarray, list[str], bool]:
    values = sorted(table[axis].drop_duplicates().tolist(), key=bias.sort_key)
    xs, labels, numeric = bias.axis_positions(values)
    return values, xs, labels, numeric


def _class_colors(classes: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    return {c: cmap(i % cmap.N) for i, c in enumerate(classes)}


def plot_per_class_vs_param(results: pd.DataFrame, axes: Sequence[str], path: Path) -> None:
    """One panel per axis: per-class accuracy (mean ± std over runs) against the parameter."""
    classes = sorted(results["class"].astype(str).unique())
    colors = _class_colors(classes)
    panels = list(axes) or ["point"]
    fig, axs = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, axis in zip(axs[0], panels, strict=True):
        values, xs, labels, numeric = _axis_xy(results, axis)
        for cls in classes:
            sub = results[results["class"].astype(str) == cls]
            g = sub.groupby(sub[axis].astype(str))["class_accuracy"]
            mean = np.array([g.mean().get(str(v), np.nan) for v in values])
            std = np.nan_to_num(np.array([g.std().get(str(v), np.nan) for v in values]))
            ax.errorbar(xs, mean, yerr=std, marker="o", ms=3, lw=1.2, capsize=2,
                        color=colors[cls], label=cls)
        ax.set_xlabel(axis)
        if not numeric:
            ax.set_xticks(xs, labels, rotation=30, ha="right")
        ax.set_ylabel("per-class linear accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axs[0][-1].legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left",
                      title="class (mean ± std over seeds)", title_fontsize=7)
    fig.suptitle("Per-class accuracy against each swept parameter")
    _save(fig, path)


def plot_bias_heatmap(matrix: pd.DataFrame, path: Path) -> None:
    """The inter-class correlation matrix as a diverging heatmap (NaN shown grey)."""
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n + 1.5, 1.0 + 0.55 * n))
    data = np.ma.masked_invalid(matrix.to_numpy(dtype=float))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.85")
    im = ax.imshow(data, cmap=cmap, vmin=-1, vmax=1)
    ax.set_xticks(range(n), [str(c) for c in matrix.columns], rotation=45, ha="right",
                  fontsize=8)
    ax.set_yticks(range(n), [str(c) for c in matrix.index], fontsize=8)
    if n <= 15:
        for i in range(n):
            for j in range(n):
                v = matrix.iat[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if abs(v) > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                 label="correlation of per-class accuracy across runs")
    ax.set_title("Inter-class bias matrix")
    _save(fig, path)


def plot_overall_vs_per_class(results: pd.DataFrame, axes: Sequence[str], path: Path) -> None:
    """Overall accuracy (bold, ± std band) over the per-class curves (thin), per axis.

    The picture of the paper's claim: a flat overall curve can hide classes that move.
    """
    classes = sorted(results["class"].astype(str).unique())
    colors = _class_colors(classes)
    panels = list(axes) or ["point"]
    pts = bias.per_point(results)
    fig, axs = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, axis in zip(axs[0], panels, strict=True):
        values, xs, labels, numeric = _axis_xy(results, axis)
        for cls in classes:
            sub = results[results["class"].astype(str) == cls]
            mean = sub.groupby(sub[axis].astype(str))["class_accuracy"].mean()
            ax.plot(xs, [mean.get(str(v), np.nan) for v in values], lw=0.9, alpha=0.55,
                    color=colors[cls], label=cls)
        g = pts.groupby(pts[axis].astype(str))["linear_accuracy"]
        m = np.array([g.mean().get(str(v), np.nan) for v in values])
        s = np.nan_to_num(np.array([g.std().get(str(v), np.nan) for v in values]))
        ax.fill_between(xs, m - s, m + s, color="black", alpha=0.15, lw=0)
        ax.plot(xs, m, color="black", lw=2.8, marker="o", label="overall")
        ax.set_xlabel(axis)
        if not numeric:
            ax.set_xticks(xs, labels, rotation=30, ha="right")
        ax.set_ylabel("linear accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axs[0][-1].legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle("Overall accuracy (black) vs per-class accuracy (thin lines)")
    _save(fig, path)


def spread_decimals(sd: float, significant: int = 2, most: int = 4) -> int:
    """Decimals that show ``sd`` with ``significant`` significant digits (at most ``most``).

    A spread that is not a positive number gets 3 decimals.

    Examples
    --------
    >>> from bioaug.study.bias_report import spread_decimals
    >>> [spread_decimals(sd) for sd in (0.5, 0.0123, 12.0, 1e-6, 0.0)]
    [2, 3, 0, 4, 3]
    >>> f"{0.0123:.{spread_decimals(0.0123)}f}"
    '0.012'
    """
    if not np.isfinite(sd) or sd <= 0:
        return 3
    return int(min(most, max(0, significant - 1 - int(np.floor(np.log10(sd))))))


def _md_table(df: pd.DataFrame, floatfmt: str = "{:.3f}", max_rows: int = 200,
              plain: Sequence[str] = ()) -> str:
    """A Markdown table; floats with ``floatfmt`` except in ``plain`` columns (``{:g}``).

    Spread columns (``std``, ``*_std``) that are empty everywhere (one seed per setting)
    are left out.
    """
    df = df.drop(columns=[c for c in df.columns if (c == "std" or str(c).endswith("_std"))
                          and df[c].isna().all()])
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.head(max_rows).itertuples(index=False, name=None):
        cells = []
        for c, v in zip(cols, row, strict=True):
            if isinstance(v, (bool, np.bool_)):
                cells.append(str(v))
            elif isinstance(v, (int, np.integer)):
                cells.append(str(int(v)))
            elif isinstance(v, (float, np.floating)):
                cells.append("" if np.isnan(v) else
                             f"{v:g}" if c in plain else floatfmt.format(v))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    if len(df) > max_rows:
        lines.append(f"\n… {len(df) - max_rows} more rows in the CSV.")
    return "\n".join(lines)


def _noise_lines(results: pd.DataFrame) -> list[str]:
    noise = bias.binomial_noise(results)
    if noise is None:
        return []
    seeds = results.groupby("point")["seed"].first().nunique()
    if noise < 5e-4:  # every class at 0 or 1 accuracy: the binomial estimate says nothing
        return []
    return [f"Sampling noise: a per-class accuracy is measured on few test items; two "
            f"standard errors are about **±{noise:.{spread_decimals(noise)}f}** (median over "
            "classes and runs). "
            "Class-level changes smaller than that are not evidence of bias"
            + (" — with one seed per setting, treat single-run differences with care."
               if seeds == 1 else "."), ""]


def _trend_sentence(trends: pd.DataFrame, axis: str) -> str:
    """Which classes gain and lose as ``axis`` grows, and which cannot be told.

    Examples
    --------
    >>> import pandas as pd
    >>> from bioaug.study.bias_report import _trend_sentence
    >>> trends = pd.DataFrame({"class": ["a", "b", "c"],
    ...                        "direction": ["gains", "flat", "unknown"]})
    >>> print(_trend_sentence(trends, "p"))
    As `p` grows: gain — `a`; lose — none (change of more than 0.01 in accuracy between the
    lowest and highest value). Not measured at both ends, so no trend: `c`.
    """
    def named(direction: str) -> str:
        return ", ".join(f"`{c}`" for c in trends.loc[trends["direction"] == direction,
                                                      "class"])

    text = (f"As `{axis}` grows: gain — {named('gains') or 'none'}; lose — "
            f"{named('loses') or 'none'} (change of more than 0.01 in accuracy between the "
            "lowest and highest value).")
    unknown = named("unknown")
    if unknown:
        text += f" Not measured at both ends, so no trend: {unknown}."
    return text


def write_bias_report(results: pd.DataFrame, axes: Sequence[str], out: Path, *,
                      title: str = "Sweep") -> dict[str, Path]:
    """Write every table, picture and ``report.md`` of the class-bias analysis into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    axes = list(axes)
    bias.check_results(results, axes)
    results = results.copy()
    results["class"] = results["class"].astype(str)
    paths = {name: out / name for name in (
        "per_class.csv", "overall.csv", "trends.csv", "bias_matrix.csv",
        "per_class_vs_param.png", "bias_heatmap.png", "overall_vs_per_class.png", "report.md")}

    per_class = bias.per_class_table(results, axes)
    overall = bias.overall_table(results, axes)
    trends = pd.concat([bias.class_trends(results, a) for a in axes], ignore_index=True) \
        if axes else pd.DataFrame()
    _write_csv(per_class, paths["per_class.csv"], index=False)
    _write_csv(overall, paths["overall.csv"], index=False)
    _write_csv(trends, paths["trends.csv"], index=False)
    n_runs = results["point"].nunique()
    if n_runs >= 2:
        matrix = bias.bias_matrix(results)
    else:
        classes = sorted(results["class"].unique())
        matrix = pd.DataFrame(np.nan, index=pd.Index(classes, name="class"), columns=classes)
    _write_csv(matrix, paths["bias_matrix.csv"], float_format="%.4f")
    plot_per_class_vs_param(results, axes, paths["per_class_vs_param.png"])
    plot_bias_heatmap(matrix, paths["bias_heatmap.png"])
    plot_overall_vs_per_class(results, axes, paths["overall_vs_per_class.png"])

    spread = bias.spread_summary(results, axes)
    lines = [f"# {title}: class-level bias report", "",
             f"{n_runs} finished run(s), {results['class'].nunique()} classes, "
             f"axes: {', '.join(f'`{a}`' for a in axes) or '(seeds only)'}.", "",
             "## Overall vs per-class", "",
             f"Across the sweep, overall linear accuracy moves by "
             f"**{spread['overall_range']:.3f}** ({spread['overall_min']:.3f} → "
             f"{spread['overall_max']:.3f}); the class that moves most "
             f"(`{spread['max_class']}`) moves by **{spread['max_class_range']:.3f}**, the "
             f"median class by {spread['median_class_range']:.3f}.", "",
             *_noise_lines(results),
             "![overall vs per-class](overall_vs_per_class.png)", "",
             _md_table(overall, plain=axes), "",
             "## Per-class accuracy against each parameter", "",
             "![per-class accuracy](per_class_vs_param.png)", ""]
    if not trends.empty:
        for axis in axes:
            lines += [_trend_sentence(trends[trends["axis"] == axis], axis), ""]
        lines += [_md_table(trends.drop(columns=["slope_unit"])), ""]
    lines += ["Full per-class table: [per_class.csv](per_class.csv).", "",
              "## Inter-class bias matrix", "",
              "Correlation, across runs, between the per-class accuracies of each pair of "
              "classes (Bendidi et al. 2023). Negative: a transformation setting that helps one "
              "class hurts the other. Grey: undefined (a class whose accuracy never changed, or "
              "fewer than two runs).", "",
              "![bias heatmap](bias_heatmap.png)", "",
              "Matrix: [bias_matrix.csv](bias_matrix.csv).", ""]
    atomic_write_text(paths["report.md"], "\n".join(lines))
    return paths
