"""Pictures of invariance tables: one panel per transformation, amplitude on x."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from bioaug.io import atomic_path
from bioaug.study.bias import axis_positions


def _grid(tables: Mapping[str, pd.DataFrame], path: Path, title: str) -> None:
    ops = list(dict.fromkeys(op for t in tables.values() for op in t["op"]))
    cols = min(5, max(1, len(ops)))
    rows = math.ceil(len(ops) / cols)
    fig, axs = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.5 * rows), squeeze=False,
                            sharey=True)
    colors = plt.get_cmap("tab10")
    for i, op in enumerate(ops):
        ax = axs[i // cols][i % cols]
        for j, (model, table) in enumerate(tables.items()):
            sub = table[table["op"] == op]
            if sub.empty:
                continue
            xs, labels, numeric = axis_positions(list(sub["amplitude"]))
            ax.errorbar(xs, sub["mean"], yerr=sub["std"], marker="o", ms=3, lw=1.2,
                        capsize=2, color=colors(j % 10), label=model, alpha=0.9)
            if not numeric or len(xs) == 1:
                ax.set_xticks(xs, [s[:18] for s in labels], fontsize=6, rotation=20)
        unit = tables[next(iter(tables))]
        unit_rows = unit[unit["op"] == op]["unit"]
        ax.set_title(op, fontsize=9)
        ax.set_xlabel(unit_rows.iloc[0] if len(unit_rows) else "", fontsize=7)
        ax.set_ylim(-0.1, 1.05)
        ax.axhline(1.0, color="0.7", lw=0.6, ls="--")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for k in range(len(ops), rows * cols):
        axs[k // cols][k % cols].axis("off")
    for r in range(rows):
        axs[r][0].set_ylabel("invariance", fontsize=8)
    if len(tables) > 1:
        handles, labels = axs[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def plot_model(table: pd.DataFrame, path: Path, title: str = "Invariance") -> None:
    """One model: mean ± std invariance against amplitude, per transformation."""
    _grid({"model": table}, path, title)


def plot_comparison(tables: Mapping[str, pd.DataFrame], path: Path) -> None:
    """Several models side by side (one line per model in each transformation's panel)."""
    _grid(tables, path, "Invariance per transformation, models side by side"
          if len(tables) > 1 else f"Invariance of {next(iter(tables))}")

