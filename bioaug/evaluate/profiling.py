"""BBBC021 mechanism-of-action profiling: NSC and NSCB 1-NN accuracy on treatment profiles.

The rules are those of Ljosa et al., "Comparison of methods for image-based profiling of
cellular morphological responses to small-molecule treatment", J. Biomol. Screen. 2013, as
used since by every BBBC021 benchmark (Ando et al. 2017, Caicedo et al. 2018, WS-DINO 2022):

1. **Well profile** = mean of the cell embeddings of a (plate, well).
2. **Treatment profile** = median over its wells of a (compound, concentration). A treatment
   is profiled over *all* its wells, whatever their batch.
3. Each treatment is a query; its MoA is predicted as the MoA of its nearest other
   treatment by **cosine** similarity (1-NN). When several references tie for nearest,
   each is an equally likely pick: the query counts as the fraction of them with its MoA
   (so ties never favour the right answer; ``n_correct`` may then be fractional).
4. **NSC** (not-same-compound): a neighbour may not be the same compound (another
   concentration of the query's compound would otherwise give the answer away). Queries and
   references are the annotated treatments; the DMSO control is excluded (103 on BBBC021).
5. **NSCB** (not-same-compound-or-batch): a neighbour may also not share a batch with the
   query. A treatment whose wells span several batches has the *set* of those batches; a
   reference is excluded when its set intersects the query's. MoAs whose treatments all sit
   in one batch cannot be scored under this rule and are dropped from queries and references
   (on BBBC021 exactly "Kinase inhibitors" and "Cholesterol-lowering": 92 treatments). A
   query with no admissible reference left (on BBBC021, the taxol control found in every
   week) is reported in ``n_unscorable`` and not counted in the accuracy.

Optionally the mean average precision (mAP) of MoA retrieval under the same exclusions:
references ranked by cosine similarity, a hit is a reference with the query's MoA.

Two retrieval tasks with permutation p-values follow the copairs framework
(:mod:`bioaug.evaluate.retrieval`; Kalinin et al. 2025), as the JUMP papers report them:

- **replicate** retrieval on well profiles: each treated well queries the other wells of
  its treatment (positives) among the control wells (negatives); mAP and p-value per
  treatment;
- **MoA** retrieval on treatment profiles: each treatment queries the treatments of other
  compounds with its MoA (positives) among those of other MoAs; mAP and p-value per MoA.

The fraction retrieved is the fraction of groups whose FDR-corrected p is below 0.05.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bioaug.embed.aggregate import treatment_profiles, well_profiles
from bioaug.errors import DataError
from bioaug.evaluate import retrieval
from bioaug.evaluate.retrieval import DEFAULT_NULL_SIZE, PairRule

__all__ = ["CONTROL", "DEFAULT_NULL_SIZE", "PROFILE_COLUMNS", "has_profile_columns",
           "moa_retrieval", "nearest_neighbour_moa", "one_batch_labels", "profile_scores",
           "replicate_retrieval"]

#: Columns needed for profiling (besides the MoA label).
PROFILE_COLUMNS: tuple[str, ...] = ("plate", "well", "compound", "concentration", "batch")
CONTROL = "DMSO"


def has_profile_columns(columns: Sequence[str], label: str = "moa") -> bool:
    """True when a table has what BBBC021 profiling needs."""
    return all(c in columns for c in (*PROFILE_COLUMNS, label))


def _is_control(values: pd.Series, control: str) -> np.ndarray:
    return values.astype(str).str.strip().str.lower().eq(control.lower()).to_numpy()


def _is_missing(values: pd.Series) -> np.ndarray:
    return (values.isna() | values.astype(str).str.strip().isin(["", "nan", "None"])).to_numpy()


def one_batch_labels(labels: np.ndarray, batch_sets: list[frozenset[str]]) -> list[str]:
    """Labels whose treatments all sit in a single batch (dropped under NSCB)."""
    out = []
    for lab in np.unique(labels):
        union = frozenset().union(*(batch_sets[i] for i in np.flatnonzero(labels == lab)))
        if len(union) <= 1:
            out.append(str(lab))
    return out


def nearest_neighbour_moa(profiles: np.ndarray, labels: np.ndarray, compounds: np.ndarray,
                          batch_sets: list[frozenset[str]] | None = None, *,
                          with_map: bool = True) -> dict[str, Any]:
    """1-NN (cosine) label transfer excluding the same compound (and shared batches if given).

    References tied for nearest (cosine within ``retrieval.TIE_TOLERANCE``) are equally
    likely picks: a query scores the fraction of them that share its label, and its AP is
    the expectation over the orders of tied references.

    Returns per-query arrays: ``neighbour`` (the first nearest reference, or -1 when there
    is no admissible one), ``n_tied`` (references tied for nearest), ``correct`` (the
    expected correctness, 0 … 1), ``ap`` (average precision of label retrieval or NaN).
    """
    sim = retrieval.unit_rows(profiles) @ retrieval.unit_rows(profiles).T
    comp = np.asarray(compounds).astype(str)
    admissible = comp[:, None] != comp[None, :]  # also removes the query itself
    if batch_sets is not None:
        admissible &= ~_shared_batches(batch_sets)
    labels = np.asarray(labels).astype(str)
    same = labels[:, None] == labels[None, :]
    masked = np.where(admissible, sim, -np.inf)
    has_ref = admissible.any(axis=1)
    tied = admissible & (masked >= masked.max(axis=1, keepdims=True) - retrieval.TIE_TOLERANCE)
    n_tied = tied.sum(axis=1)
    correct = np.where(has_ref, (tied & same).sum(axis=1) / np.maximum(n_tied, 1), 0.0)
    neighbour = np.where(has_ref, np.argmax(tied, axis=1), -1)
    ap = (retrieval.ap_from_ranking(sim, admissible & same, admissible & ~same)[0]
          if with_map else np.full(len(labels), np.nan))
    return {"neighbour": neighbour, "n_tied": n_tied, "correct": correct,
            "has_reference": has_ref, "ap": ap}


def _shared_batches(batch_sets: list[frozenset[str]]) -> np.ndarray:
    """(n × n) mask: do treatments i and j have a batch in common?"""
    n = len(batch_sets)
    shares = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for j in range(n):
            shares[i, j] = bool(batch_sets[i] & batch_sets[j])
    return shares


def _summarise(name: str, table: pd.DataFrame, labels: np.ndarray, res: dict[str, Any],
               extra: dict[str, Any]) -> dict[str, Any]:
    scored = res["has_reference"]
    correct = res["correct"]
    per = {}
    for lab in sorted(np.unique(labels)):
        m = (labels == lab) & scored
        per[str(lab)] = {"accuracy": float(correct[m].mean()) if m.any() else None,
                         "n_treatments": int((labels == lab).sum()), "n_scored": int(m.sum())}
    ap = res["ap"][scored]
    ap = ap[~np.isnan(ap)]
    unscored = table.loc[~scored, ["compound", "concentration"]].astype(str)
    return {
        "rule": name,
        "accuracy": float(correct[scored].mean()) if scored.any() else None,
        "n_correct": float(correct[scored].sum()),
        "n_tied_queries": int((res["n_tied"][scored] > 1).sum()),
        "n_treatments": len(labels),
        "n_scored": int(scored.sum()),
        "n_unscorable": int((~scored).sum()),
        "unscorable": [f"{c} @ {k}" for c, k in zip(unscored["compound"],
                                                     unscored["concentration"], strict=True)],
        "n_items": int(scored.sum()),
        "n_classes": len(np.unique(labels)),
        "map": float(ap.mean()) if len(ap) else None,
        "map_n_queries": len(ap),
        "per_class": per,
        **extra,
    }


def replicate_retrieval(x_wells: np.ndarray, wells: pd.DataFrame, is_control: np.ndarray, *,
                        null_size: int = DEFAULT_NULL_SIZE, seed: int = 0
                        ) -> dict[str, Any] | None:
    """Replicate retrieval: treated wells vs the control wells; mAP per treatment.

    None when there is no control well or no treatment with two wells.
    """
    if not is_control.any() or (~is_control).sum() < 2:
        return None
    meta = pd.DataFrame({
        "treatment": (wells["compound"].astype(str) + " @ "
                      + wells["concentration"].astype(str)).to_numpy(),
        # a control's own index: controls are never positives of each other
        "reference": np.where(is_control, np.arange(len(wells)), -1)})
    rules = (PairRule(same=("treatment", "reference")), PairRule(diff=("treatment", "reference")))
    res = retrieval.average_precision(x_wells, meta, *rules)
    if not (res.n_pos > 0).any():
        return None
    table = retrieval.mean_average_precision(res, meta["treatment"], null_size=null_size,
                                             seed=seed)
    return retrieval.retrieval_summary("replicate", table, len(wells), null_size=null_size)


def moa_retrieval(x_treat: np.ndarray, labels: np.ndarray, compounds: np.ndarray, *,
                  null_size: int = DEFAULT_NULL_SIZE, seed: int = 0) -> dict[str, Any] | None:
    """MoA retrieval: same MoA, other compound vs other MoAs; mAP per MoA."""
    meta = pd.DataFrame({"moa": np.asarray(labels).astype(str),
                         "compound": np.asarray(compounds).astype(str)})
    res = retrieval.average_precision(x_treat, meta, PairRule(same=("moa",), diff=("compound",)),
                                      PairRule(diff=("moa",)))
    if not (res.n_pos > 0).any():
        return None
    table = retrieval.mean_average_precision(res, meta["moa"], null_size=null_size, seed=seed)
    return retrieval.retrieval_summary("moa", table, len(meta), null_size=null_size)


def profile_scores(x: np.ndarray, obs: pd.DataFrame, *, label: str = "moa",
                   control: str = CONTROL, with_map: bool = True,
                   null_size: int = DEFAULT_NULL_SIZE, seed: int = 0) -> dict[str, Any]:
    """NSC and NSCB on cell (or well) embeddings ``x`` with BBBC021-style metadata ``obs``.

    Returns the ``report["profiling"]`` block with ``nsc`` and ``nscb`` sub-blocks, each
    with ``accuracy``, counts, ``per_class`` (per MoA) and optional ``map``, and the
    ``replicate`` and ``moa`` retrieval blocks (mAP with p-values; None when undefined).
    """
    missing = [c for c in (*PROFILE_COLUMNS, label) if c not in obs.columns]
    if missing:
        raise DataError(f"profiling needs columns {missing}; the table has "
                        f"{', '.join(map(str, obs.columns))}")
    xw, wells = well_profiles(x, obs, carry=("batch", "compound", "concentration", label))
    well_ctrl = _is_control(wells[label], control) | _is_control(wells["compound"], control)
    xt, treat = treatment_profiles(xw, wells, label=label)
    is_ctrl = _is_control(treat[label], control) | _is_control(treat["compound"], control)
    is_missing = _is_missing(treat[label])
    keep = ~is_ctrl & ~is_missing
    xt, treat = xt[keep], treat.loc[keep].reset_index(drop=True)
    labels = treat[label].astype(str).to_numpy()
    compounds = treat["compound"].astype(str).to_numpy()
    bsets = [frozenset(str(b).split(";")) for b in treat["batches"]]
    base = {"n_cells": len(obs), "n_wells": len(wells),
            "n_control_treatments": int(is_ctrl.sum()),
            "n_unannotated_treatments": int((is_missing & ~is_ctrl).sum())}
    if len(treat) < 2 or len(np.unique(labels)) < 2:
        raise DataError(f"profiling needs at least two annotated treatments of two '{label}' "
                        f"classes; found {len(treat)} treatment(s)")
    nsc = nearest_neighbour_moa(xt, labels, compounds, None, with_map=with_map)
    out_nsc = _summarise("NSC", treat, labels, nsc, {})

    dropped = one_batch_labels(labels, bsets)
    sel = ~np.isin(labels, dropped)
    if sel.sum() >= 2 and len(np.unique(labels[sel])) >= 2:
        nscb = nearest_neighbour_moa(xt[sel], labels[sel], compounds[sel],
                                     [b for b, s in zip(bsets, sel, strict=True) if s],
                                     with_map=with_map)
        out_nscb = _summarise("NSCB", treat.loc[sel].reset_index(drop=True), labels[sel], nscb,
                              {"dropped_classes": dropped})
    else:
        out_nscb = None
    replicate = replicate_retrieval(xw, wells, well_ctrl, null_size=null_size, seed=seed)
    moa = moa_retrieval(xt, labels, compounds, null_size=null_size, seed=seed)
    return {"label": label, **base, "nsc": out_nsc, "nscb": out_nscb,
            "replicate": replicate, "moa": moa,
            "treatments": _treatment_table(treat, labels, nsc, compounds)}


def _treatment_table(treat: pd.DataFrame, labels: np.ndarray, nsc: dict[str, Any],
                     compounds: np.ndarray) -> list[dict[str, Any]]:
    rows = []
    for i in range(len(treat)):
        j = int(nsc["neighbour"][i])
        rows.append({"compound": str(compounds[i]),
                     "concentration": str(treat["concentration"].iloc[i]),
                     "moa": str(labels[i]), "batches": str(treat["batches"].iloc[i]),
                     "n_wells": int(treat["n_wells"].iloc[i]),
                     "nsc_neighbour": (f"{compounds[j]} @ {treat['concentration'].iloc[j]}"
                                       if j >= 0 else None),
                     "nsc_predicted": str(labels[j]) if j >= 0 else None})
    return rows
