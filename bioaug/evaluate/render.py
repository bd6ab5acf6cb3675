"""The evaluation report as text: the CLI's tables and ``report.md``.

Every metric row comes from the metric registry (:data:`~bioaug.evaluate.metrics.METRICS`:
its names, titles, order and key paths); :data:`NOTES` adds, per metric, what it was
computed on. ``report.md`` is a sequence of sections (:data:`SECTIONS`), each a function
of the report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bioaug.evaluate.metrics import (
    CORRECTED_SUFFIX,
    PROFILE_METRICS,
    dig,
    metric_names,
    metric_path,
    metric_title,
    metric_values,
)


def fmt(v: Any) -> str:
    """A value as a table shows it (3 decimals; "—" for none)."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def count(v: float) -> str:
    """A count that ties may make fractional (``3``, ``2.33``)."""
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}"


def _retrieval_note(blk: Any) -> str:
    return (f"{blk['n_groups']} groups, {blk['n_profiles']} profiles; "
            f"retrieved = FDR p < {blk['threshold']:g}, {blk['null_size']} permutations")


def _linear_note(blk: Any) -> str:
    grouped = blk["split"].get("grouped_by")
    return (f"{blk['n_train']} train / {blk['n_test']} test, {blk['n_classes']} classes"
            + (f", grouped by {grouped}" if grouped else ""))


#: metric name → what it was computed on, from the block that holds it (the metric's
#: key path less its last key). Metrics not listed have no note.
NOTES: dict[str, Callable[[Any], str]] = {
    "leiden_ami": lambda b: (f"{b['n_items']} items, {b['n_classes']} classes, "
                             f"{b['n_clusters']} clusters @ res {b['resolution']:.3g}"),
    "kmeans_ami": lambda b: f"k = {b['k']}",
    "silhouette": lambda b: f"{b['n_items']} items",
    "linear_accuracy": _linear_note,
    "nsc": lambda b: (f"{b['n_scored']} of {b['n_treatments']} treatments, "
                      f"{b['n_classes']} MoAs"),
    "nsc_map": lambda b: f"{b['map_n_queries']} queries",
    "replicate_map": _retrieval_note,
    "moa_map": _retrieval_note,
}
NOTES.update(nscb=NOTES["nsc"], nscb_map=NOTES["nsc_map"])


def summary_rows(report: Any) -> list[tuple[str, str, str]]:
    """(metric, value, computed on) rows: the short summary the CLI prints.

    One row per registered metric (:data:`~bioaug.evaluate.metrics.METRICS`, in its order,
    then the ``*_corrected`` ones) whose block the report holds; a block the report lacks
    (NSC outside BBBC021, replicate retrieval without controls) gives no row.

    Parameters
    ----------
    report
        An :class:`~bioaug.evaluate.result.EvaluationReport` or its ``report.json`` dict.

    Returns
    -------
    list of tuple
        ``(title, value with three decimals, what it was computed on)`` per metric.

    Examples
    --------
    >>> from bioaug.evaluate import summary_rows
    >>> report = {"clustering": {"kmeans": {"ami": 0.81234, "ari": 0.7, "k": 3},
    ...                          "silhouette": {"value": 0.25, "n_items": 40}}}
    >>> for row in summary_rows(report):
    ...     print(row)
    ('k-means AMI', '0.812', 'k = 3')
    ('k-means ARI', '0.700', '')
    ('silhouette', '0.250', '40 items')
    """
    corrected = dig(report, ("profiling_corrected",)) is not None
    names = metric_names(corrected)
    values = metric_values(report, names)
    rows = []
    for name in names:
        block = dig(report, metric_path(name)[:-1])
        if block is not None:
            note = NOTES.get(name.removesuffix(CORRECTED_SUFFIX))
            rows.append((metric_title(name), fmt(values[name]), note(block) if note else ""))
    return rows


def format_table(rows: list[tuple[str, str, str]]) -> str:
    """Fixed-width text table of :func:`summary_rows`.

    Parameters
    ----------
    rows
        ``(title, value, note)`` rows, as :func:`summary_rows` returns them.

    Returns
    -------
    str
        One line per row: titles left-aligned, values right-aligned, then the note.

    Examples
    --------
    >>> from bioaug.evaluate import format_table
    >>> print(format_table([("NSC", "0.912", "103 treatments"), ("k-means AMI", "0.41", "")]))
    NSC          0.912  103 treatments
    k-means AMI   0.41
    """
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip() for a, b, c in rows)


def before_after_rows(report: Any) -> list[tuple[str, str, str]]:
    """(metric, before, after) rows of the profiling metrics when a correction was applied."""
    if report.get("profiling_corrected") is None:
        return []
    values = metric_values(report, [*PROFILE_METRICS,
                                    *(f"{m}{CORRECTED_SUFFIX}" for m in PROFILE_METRICS)])
    return [(metric_title(m), fmt(values[m]), fmt(values[f"{m}{CORRECTED_SUFFIX}"]))
            for m in PROFILE_METRICS]


def layer_rows(report: Any) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the per-layer table: a row per layer (the default first, marked),
    a column per registered metric (titles from :data:`~bioaug.evaluate.metrics.METRICS`)."""
    block = report.get("layers") if hasattr(report, "get") else None
    if not block:
        return [], []
    header = ["layer", *(metric_title(m) for m in block["metrics"])]
    rows = [[f"{layer} ({block['reps'][layer]})" if layer == block["default"] else layer,
             *(fmt(block["scores"][layer][m]) for m in block["metrics"])]
            for layer in block["scores"]]
    return header, rows


def format_layer_table(report: Any) -> str:
    """Fixed-width text form of :func:`layer_rows` (empty for a single layer)."""
    header, rows = layer_rows(report)
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                     for r in [header, *rows])


# -- report.md, section by section --------------------------------------------------------
def _training_lines(prov: Any) -> list[str]:
    """Report lines: the obs columns each model's training read, and leakage warnings."""
    lines = [f"- model {t['model']} trained with --positives {t['positives']}, --batches "
             f"{t['batches']}; obs columns used: {', '.join(t.get('obs_columns') or []) or '—'}"
             for t in prov.get("training") or []]
    return lines + [f"- **warning**: {w}" for w in prov.get("leakage_warnings") or []]


def _header(report: Any) -> list[str]:
    inp = report["input"]
    left_out = (f", {inp['n_items_excluded']} of {', '.join(inp['excluded_labels'])} left out"
                if inp["n_items_excluded"] else "")
    return ["# bioaug evaluation report", "",
            f"- input: `{inp['path'] or '(in memory)'}`, representation `{inp['rep']}` "
            f"({inp['dims']} dims), label `{inp['label']}`",
            f"- {inp['n_items']} items with a label ({inp['n_items_without_label']} without"
            f"{left_out}), {inp['n_classes']} classes; seed {report['seed']}",
            *_training_lines(inp.get("embedding_provenance") or {})]


def _summary(report: Any) -> list[str]:
    return ["", "## Summary", "", "| metric | value | computed on |", "|---|---:|---|",
            *(f"| {a} | {b} | {c} |" for a, b, c in summary_rows(report))]


def _layers(report: Any) -> list[str]:
    """The ``## Layers`` section (nothing for a single layer)."""
    header, rows = layer_rows(report)
    if not rows:
        return []
    block = report["layers"]
    return ["", "## Layers", "",
            f"Each layer of the embedding scored the same way; `{block['default']}` is the "
            "default layer (`X_bioaug`, the sections below), the others "
            "`X_bioaug_<layer>`.", "",
            "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1),
            *("| " + " | ".join(r) + " |" for r in rows)]


def _clustering(report: Any) -> list[str]:
    c = report["clustering"]
    rep = c["representation"]
    space = (f"the first {rep['dims']} principal components of {rep['input_dims']} dims "
             f"({rep['explained_variance']:.1%} of the variance)" if rep.get("pca")
             else f"the {rep['dims']}-dim representation")
    leiden = c["leiden"]
    return ["", "## Clustering", "",
            f"kNN graph (`sc.pp.neighbors`, {c['n_neighbors']} neighbours) on {space}.",
            f"Leiden (igraph, 2 iterations) resolution {leiden['resolution']:.4g} gave "
            f"{leiden['n_clusters']} clusters for {leiden['target_clusters']} classes "
            f"({'exact' if leiden['exact'] else 'closest found'}, {leiden['tries']} runs). "
            f"k-means with k = {c['kmeans']['k']}.",
            f"Silhouette of the label on {c['silhouette']['n_items']} items "
            f"(Euclidean, original representation)."]


def _skipped(report: Any) -> list[str]:
    prof = report.get("profiling")
    if prof and prof.get("skipped"):
        return ["", f"Profiling (NSC / NSCB / mAP): not scored — {prof['skipped']}."]
    return []


def _before_after(report: Any) -> list[str]:
    if report.get("profiling_corrected") is None:
        return []
    steps = " → ".join(str(s.get("step")) for s in (report.get("profile_steps") or []))
    return ["", "## Profiling before and after correction", "",
            f"Correction steps: {steps}.", "", "| metric | before | after |",
            "|---|---:|---:|", *(f"| {a} | {b} | {c} |" for a, b, c in before_after_rows(report))]


def _retrieval(report: Any) -> list[str]:
    prof = report.get("profiling")
    lines = []
    for task, what in (("replicate", "treatment"), ("moa", "MoA")):
        blk = prof.get(task) if prof else None
        if blk:
            lines += ["", f"**{task} retrieval** (mAP per {what}, copairs-style permutation "
                      f"p-values): mAP {fmt(blk['map'])}, {fmt(blk['fraction_retrieved'])} "
                      f"retrieved ({_retrieval_note(blk)})."]
    return lines


def _rule(blk: Any) -> list[str]:
    """One NSC / NSCB rule: its sentence and its per-MoA table."""
    dropped = blk.get("dropped_classes")
    tied = blk.get("n_tied_queries")
    return [f"**{blk['rule']}**: accuracy {fmt(blk['accuracy'])} "
            f"({count(blk['n_correct'])} of {blk['n_scored']} scored; "
            f"{blk['n_treatments']} treatments, {blk['n_classes']} MoAs)"
            + (f"; dropped one-batch MoAs: {', '.join(dropped)}" if dropped else "")
            + (f"; no admissible neighbour: {', '.join(blk['unscorable'])}"
               if blk["unscorable"] else "")
            + (f"; {tied} queries had tied nearest references (each counted as the "
               "fraction of them with its MoA)" if tied else "") + ".",
            "", "| MoA | accuracy | scored treatments |", "|---|---:|---:|",
            *(f"| {k} | {fmt(v['accuracy'])} | {v['n_scored']} |"
              for k, v in blk["per_class"].items()), ""]


def _bbbc021(report: Any) -> list[str]:
    prof = report.get("profiling")
    if not (prof and prof.get("nsc")):
        return []
    lines = ["", "## BBBC021 profiling (treatment profiles, 1-NN cosine)", "",
             f"{prof['n_cells']} items → {prof['n_wells']} well profiles (mean) → "
             f"treatment profiles (median of wells); {prof['n_control_treatments']} "
             f"control and {prof['n_unannotated_treatments']} unannotated treatment(s) "
             "left out.", ""]
    for key in ("nsc", "nscb"):
        if prof.get(key):
            lines += _rule(prof[key])
    return lines


def _linear(report: Any) -> list[str]:
    lin = report["linear"]
    split = lin["split"]
    how = (f", split grouped by `{split['grouped_by']}` ({split['n_groups_train']} / "
           f"{split['n_groups_test']} groups)" if split.get("grouped_by")
           else ", stratified split")
    left_out = (f"; classes left out (a single group): {', '.join(lin['excluded_classes'])}"
                if lin["excluded_classes"] else "")
    return ["", "## Linear probe", "",
            f"Standardised features, multinomial logistic regression; {lin['n_train']} train "
            f"/ {lin['n_test']} test items{how}{left_out}.",
            "", "| class | accuracy | test items |", "|---|---:|---:|",
            *(f"| {k} | {fmt(v)} | {lin['per_class_n_test'][k]} |"
              for k, v in lin["per_class"].items())]


def _figures(report: Any) -> list[str]:
    figures = report.get("figures")
    if not figures:
        return []
    return ["", "## Figures", "", *(f"![{k}]({v})" for k, v in figures.items())]


def _timings(report: Any) -> list[str]:
    return ["", "## Timings (s)", "",
            ", ".join(f"{k} {v:.1f}" for k, v in report["timings"].items()), ""]


#: The sections of ``report.md``, in order.
SECTIONS: tuple[Callable[[Any], list[str]], ...] = (
    _header, _summary, _layers, _clustering, _skipped, _before_after, _retrieval, _bbbc021,
    _linear, _figures, _timings)


def report_markdown(report: Any) -> str:
    """The human-readable report (``report.md``): :data:`SECTIONS` in order."""
    return "\n".join(line for section in SECTIONS for line in section(report))
