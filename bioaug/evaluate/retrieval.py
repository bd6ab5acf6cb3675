"""Mean average precision of profile retrieval, with permutation p-values and FDR.

The framework of Kalinin et al., "A versatile information retrieval framework for
evaluating profile strength and similarity" (copairs; Nat. Commun. 2025), as the JUMP
Cell Painting papers use it:

1. Pairs are defined by metadata rules. A *positive* pair shares the columns of
   ``pos.same`` and differs in every column of ``pos.diff``; a *negative* pair likewise
   with ``neg``. A profile is a query when it has at least one positive pair.
2. Each query ranks its positive and negative partners by cosine similarity (ties: the
   positive first). Its average precision (AP) is the mean, over its positives, of the
   precision at the rank of that positive.
3. Queries are grouped (by treatment, by MoA …); a group's mAP is the mean AP of its
   queries.
4. The null distribution of the AP of a query with ``m`` positives among ``t`` partners is
   that of ``m`` ranks drawn at random among ``t``: ``null_size`` samples per
   configuration ``(m, t)``. A group's null is the mean, sample by sample, of its queries'
   nulls; its p-value is ``(#{null > mAP} + 1) / (null_size + 1)``.
5. p-values are corrected for the false-discovery rate (Benjamini–Hochberg), and the
   *fraction retrieved* is the fraction of groups with corrected p below the threshold.

AP, mAP and the FDR correction agree with copairs to 1e-6 on the same data and rules
(tested when copairs is installed); the null samples are drawn from bioaug's own seeded
generator, so p-values agree in distribution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: Default number of null samples per (positives, partners) configuration.
DEFAULT_NULL_SIZE = 1000
#: Default significance threshold of the corrected p-value.
DEFAULT_THRESHOLD = 0.05


@dataclass(frozen=True)
class PairRule:
    """Which pairs of profiles a rule keeps (copairs' ``sameby`` / ``diffby``).

    Parameters
    ----------
    same
        Columns both profiles must share.
    diff
        Columns in which the two profiles must all differ.
    """

    same: tuple[str, ...] = ()
    diff: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.same, *self.diff)


@dataclass
class APResult:
    """Per-profile average precision: ``ap`` (NaN for non-queries), ``n_pos``, ``n_total``."""

    ap: np.ndarray
    n_pos: np.ndarray
    n_total: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


def _codes(meta: pd.DataFrame, columns: Sequence[str]) -> dict[str, np.ndarray]:
    return {c: pd.factorize(meta[c].astype(str), sort=True)[0] for c in columns}


def _pairs(codes: Mapping[str, np.ndarray], rule: PairRule, rows: slice, n: int) -> np.ndarray:
    """Boolean (rows × n) mask of the pairs the rule keeps (never a profile with itself)."""
    idx = np.arange(n)
    mask = idx[rows][:, None] != idx[None, :]
    for c in rule.same:
        mask &= codes[c][rows][:, None] == codes[c][None, :]
    for c in rule.diff:
        mask &= codes[c][rows][:, None] != codes[c][None, :]
    return mask


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float64."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def ap_from_ranking(sim: np.ndarray, pos: np.ndarray, neg: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP of each row of ``sim`` over its positive and negative columns.

    Parameters
    ----------
    sim
        (queries × profiles) similarities.
    pos, neg
        Boolean masks of the same shape: positive and negative partners of each query.

    Returns
    -------
    (ap, n_pos, n_total); ap is NaN where a row has no positive partner.
    """
    cand = pos | neg
    n_pos = pos.sum(axis=1)
    n_total = cand.sum(axis=1)
    # sort by similarity (descending), positives first on ties; non-candidates last
    key_sim = np.where(cand, -sim, np.inf)
    order = np.lexsort((~pos, key_sim), axis=1)
    rel = np.take_along_axis(pos & cand, order, axis=1)
    tp = np.cumsum(rel, axis=1)
    ranks = np.arange(1, sim.shape[1] + 1)
    prec_sum = (np.where(rel, tp / ranks, 0.0)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(n_pos > 0, prec_sum / np.maximum(n_pos, 1), np.nan)
    return ap, n_pos, n_total


def average_precision(x: np.ndarray, meta: pd.DataFrame, pos: PairRule, neg: PairRule, *,
                      block: int = 512) -> APResult:
    """Average precision of every profile as a query (cosine similarity).

    Parameters
    ----------
    x
        (profiles × features) matrix.
    meta
        One row per profile with the columns the rules name.
    pos, neg
        Rules of positive and negative pairs.
    block
        Queries ranked at a time (memory is ``block × profiles``).

    Returns
    -------
    :class:`APResult`; profiles without a positive partner have AP NaN.
    """
    n = len(x)
    missing = [c for c in {*pos.columns, *neg.columns} if c not in meta.columns]
    if missing:
        raise KeyError(f"metadata lacks columns {missing}")
    codes = _codes(meta, sorted({*pos.columns, *neg.columns}))
    u = unit_rows(x)
    ap = np.full(n, np.nan)
    n_pos = np.zeros(n, dtype=np.int64)
    n_total = np.zeros(n, dtype=np.int64)
    for start in range(0, n, block):
        rows = slice(start, min(n, start + block))
        p = _pairs(codes, pos, rows, n)
        q = _pairs(codes, neg, rows, n) & ~p
        sim = u[rows] @ u.T
        a, m, t = ap_from_ranking(sim, p, q)
        ap[rows], n_pos[rows], n_total[rows] = a, m, t
    return APResult(ap=ap, n_pos=n_pos, n_total=n_total)


def null_ap(n_pos: int, n_total: int, null_size: int, rng: np.random.Generator) -> np.ndarray:
    """``null_size`` AP values of ``n_pos`` positives placed at random among ``n_total``."""
    if n_pos <= 0 or n_total <= 0:
        return np.full(null_size, np.nan)
    if n_pos >= n_total:
        return np.ones(null_size)
    keys = rng.random((null_size, n_total))
    first = np.argpartition(keys, n_pos - 1, axis=1)[:, :n_pos]
    ranks = np.sort(first, axis=1) + 1.0
    return (np.arange(1, n_pos + 1) / ranks).mean(axis=1)


def fdr_bh(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (NaN kept as NaN)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    v = p[ok]
    m = len(v)
    if m == 0:
        return out
    order = np.argsort(v, kind="mergesort")
    scaled = v[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(scaled[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.clip(adj, 0.0, 1.0)
    out[ok] = res
    return out


def mean_average_precision(res: APResult, groups: Sequence[Any] | np.ndarray, *,
                           null_size: int = DEFAULT_NULL_SIZE, seed: int = 0,
                           threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """mAP per group with permutation p-values and FDR-corrected p-values.

    Parameters
    ----------
    res
        Per-profile AP from :func:`average_precision`.
    groups
        Group of each profile (queries without a positive partner are left out).
    null_size
        Null samples per (positives, partners) configuration.
    seed
        Seed of the null samples.
    threshold
        Significance threshold for ``below_p`` / ``below_corrected_p``.

    Returns
    -------
    One row per group: ``group``, ``mean_average_precision``, ``n_queries``,
    ``p_value``, ``corrected_p_value``, ``below_p``, ``below_corrected_p``.
    """
    groups = np.asarray(groups).astype(str)
    q = (res.n_pos > 0) & ~np.isnan(res.ap)
    cols = ["group", "mean_average_precision", "n_queries", "p_value", "corrected_p_value",
            "below_p", "below_corrected_p"]
    if not q.any():
        return pd.DataFrame(columns=cols)
    confs = np.stack([res.n_pos[q], res.n_total[q]], axis=1)
    uniq, inv = np.unique(confs, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    rng = np.random.default_rng(seed)
    nulls = np.stack([null_ap(int(m), int(t), null_size, rng) for m, t in uniq])
    ap, g = res.ap[q], groups[q]
    rows = []
    for name in sorted(np.unique(g)):
        members = np.flatnonzero(g == name)
        score = float(ap[members].mean())
        null = nulls[inv[members]].mean(axis=0)
        p = (float((null > score).sum()) + 1.0) / (null_size + 1.0)
        rows.append({"group": name, "mean_average_precision": score,
                     "n_queries": len(members), "p_value": p})
    table = pd.DataFrame(rows)
    table["corrected_p_value"] = fdr_bh(table["p_value"].to_numpy())
    table["below_p"] = table["p_value"] < threshold
    table["below_corrected_p"] = table["corrected_p_value"] < threshold
    return table[cols]


def retrieval_summary(task: str, table: pd.DataFrame, n_profiles: int, *, null_size: int,
                      threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """The report block of one retrieval task (mAP, fraction retrieved, per group)."""
    n = len(table)
    return {
        "task": task,
        "map": float(table["mean_average_precision"].mean()) if n else None,
        "n_groups": n,
        "n_profiles": int(n_profiles),
        "fraction_retrieved": float(table["below_corrected_p"].mean()) if n else None,
        "fraction_retrieved_uncorrected": float(table["below_p"].mean()) if n else None,
        "threshold": threshold,
        "null_size": int(null_size),
        "groups": [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()}
                   for r in table.to_dict(orient="records")],
    }
