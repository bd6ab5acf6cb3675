"""Mean average precision of profile retrieval, with permutation p-values and FDR.

The framework of Kalinin et al., "A versatile information retrieval framework for
evaluating profile strength and similarity" (copairs; Nat. Commun. 2025), as the JUMP
Cell Painting papers use it:

1. Pairs are defined by metadata rules. A *positive* pair shares the columns of
   ``pos.same`` and differs in every column of ``pos.diff``; a *negative* pair likewise
   with ``neg``. A profile is a query when it has at least one positive pair.
2. Each query ranks its positive and negative partners by cosine similarity. Its average
   precision (AP) is the mean, over its positives, of the precision at the rank of that
   positive. Partners with tied similarities (within :data:`TIE_TOLERANCE`) take every
   order among themselves with equal chance: the AP is its expectation over those orders
   (McSherry & Najork, "Computing information retrieval performance measures efficiently
   in the presence of tied scores", ECIR 2008), so ties never favour positives and a
   constant embedding scores the chance level, the mean of the null below.
3. Queries are grouped (by treatment, by MoA …); a group's mAP is the mean AP of its
   queries.
4. The null distribution of the AP of a query with ``m`` positives among ``t`` partners is
   that of ``m`` ranks drawn at random among ``t``: ``null_size`` samples per
   configuration ``(m, t)``, each configuration from its own seeded stream and drawn in
   chunks, so memory stays bounded whatever ``null_size`` (time grows with it). A group's
   null is the mean, sample by sample, of its queries' nulls; its p-value is
   ``(#{null > mAP} + 1) / (null_size + 1)``.
5. p-values are corrected for the false-discovery rate (Benjamini–Hochberg), and the
   *fraction retrieved* is the fraction of groups with corrected p below the threshold.

AP, mAP and the FDR correction agree with copairs to 1e-6 on the same data and rules when
no similarities tie (tested when copairs is installed; copairs orders tied partners by
their position in the table); the null samples are drawn from bioaug's own seeded
generators, so p-values agree in distribution.
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
#: Cosine similarities closer than this are ties: far below what float32 profiles resolve,
#: far above the rounding of the float64 products that compute them.
TIE_TOLERANCE = 1e-9
#: Null samples drawn at a time for every configuration, and the most random keys
#: (samples × partners) one draw holds: memory stays bounded whatever ``null_size``.
NULL_CHUNK = 4096
NULL_CHUNK_KEYS = 1 << 22


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
    """AP of each row of ``sim`` over its positive and negative columns, ties averaged.

    Parameters
    ----------
    sim
        (queries × profiles) similarities.
    pos, neg
        Boolean masks of the same shape: positive and negative partners of each query.

    Returns
    -------
    (ap, n_pos, n_total); ap is NaN where a row has no positive partner. Partners whose
    similarities tie count as every order among them equally likely (the expected AP).
    """
    cand = pos | neg
    n_pos = pos.sum(axis=1)
    n_total = cand.sum(axis=1)
    # sort by similarity (descending); non-candidates last, where they count for nothing
    key = np.where(cand, -np.asarray(sim, dtype=np.float64), np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    ranked = np.take_along_axis(key, order, axis=1)
    rel = np.take_along_axis(pos & cand, order, axis=1)
    prec_sum = expected_precision_sum(ranked, rel)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(n_pos > 0, prec_sum / np.maximum(n_pos, 1), np.nan)
    return ap, n_pos, n_total


def tie_groups(ranked: np.ndarray, tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Boolean mask of the columns that open a new tie group in each row of ``ranked``
    (sorted ascending): the first column, and every value more than ``tolerance`` above
    the one before it."""
    starts = np.ones(ranked.shape, dtype=bool)
    with np.errstate(invalid="ignore"):  # inf - inf: the non-candidates, one group
        starts[:, 1:] = np.diff(ranked, axis=1) > tolerance
    return starts


def expected_precision_sum(ranked: np.ndarray, rel: np.ndarray,
                           tolerance: float = TIE_TOLERANCE) -> np.ndarray:
    """Per row, the sum over positives of the precision at their rank, in expectation over
    the orders of tied items (McSherry & Najork 2008).

    In a tie group of ``n`` items holding ``p`` positives, after ``P`` positives and ``N``
    items, position ``i`` (1 … n) is a positive with chance ``p / n``; given that, the
    positives before it in the group number ``(i - 1)(p - 1)/(n - 1)`` on average, so the
    group adds ``(p / n) Σᵢ (P + 1 + (i - 1)(p - 1)/(n - 1)) / (N + i)``, summed in closed
    form with harmonic numbers (memory: one value per group). Without ties this is the
    usual sum, computed exactly.

    Parameters
    ----------
    ranked
        (rows × items) sort keys, ascending along each row (ties: equal within
        ``tolerance``).
    rel
        Boolean relevance (positive) of each item, in the same order.
    tolerance
        Keys closer than this are tied.
    """
    rows, cols = ranked.shape
    starts = np.flatnonzero(tie_groups(ranked, tolerance))  # every row opens a group
    ends = np.append(starts[1:], rows * cols)  # so no group runs into the next row
    cum = np.concatenate([[0], np.cumsum(rel.ravel(), dtype=np.int64)])
    row_first = starts - starts % cols
    n = (ends - starts).astype(np.float64)
    p = (cum[ends] - cum[starts]).astype(np.float64)
    before_pos = (cum[starts] - cum[row_first]).astype(np.float64)
    before = (starts - row_first).astype(np.float64)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, cols + 1))])
    # Σᵢ 1/(N + i) and Σᵢ (i - 1)/(N + i) = n - (N + 1) Σᵢ 1/(N + i), i = 1 … n
    inverse = np.where(n == 1, 1.0 / (before + 1.0),
                       harmonic[(starts - row_first) + (ends - starts)] -
                       harmonic[starts - row_first])
    within = np.where(n > 1, (p - 1.0) / np.maximum(n - 1.0, 1.0)
                      * (n - (before + 1.0) * inverse), 0.0)
    gain = p / n * ((before_pos + 1.0) * inverse + within)
    return np.bincount(starts // cols, weights=gain, minlength=rows)


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
    """``null_size`` AP values of ``n_pos`` positives placed at random among ``n_total``.

    The random keys are drawn in blocks of at most :data:`NULL_CHUNK_KEYS`; a generator
    gives the same samples however the calls are split (``null_ap(…, a, rng)`` then
    ``null_ap(…, b, rng)`` equals ``null_ap(…, a + b, rng)``).
    """
    if n_pos <= 0 or n_total <= 0:
        return np.full(null_size, np.nan)
    if n_pos >= n_total:
        return np.ones(null_size)
    out = np.empty(null_size)
    step = max(1, NULL_CHUNK_KEYS // n_total)
    for a in range(0, null_size, step):
        keys = rng.random((min(step, null_size - a), n_total))
        first = np.argpartition(keys, n_pos - 1, axis=1)[:, :n_pos]
        ranks = np.sort(first, axis=1) + 1.0
        out[a:a + len(keys)] = (np.arange(1, n_pos + 1) / ranks).mean(axis=1)
    return out


def null_exceedances(configs: np.ndarray, members: list[np.ndarray], scores: np.ndarray, *,
                     null_size: int, seed: int, chunk: int = NULL_CHUNK) -> np.ndarray:
    """Per group, how many of ``null_size`` null mAP samples exceed its score.

    Parameters
    ----------
    configs
        (configurations × 2) array of (positives, partners).
    members
        Per group, the configuration index of each of its queries.
    scores
        Per group, its mAP.
    null_size
        Null samples per configuration.
    seed
        Seed of the samples: configuration ``c`` draws from the ``c``-th stream spawned
        from it, so the result does not depend on ``chunk``.
    chunk
        Samples drawn at a time (memory: configurations × ``chunk``).
    """
    streams = [np.random.default_rng(s)
               for s in np.random.SeedSequence(seed).spawn(len(configs))]
    weights = [np.unique(m, return_counts=True) for m in members]
    exceed = np.zeros(len(members), dtype=np.int64)
    for a in range(0, null_size, chunk):
        size = min(chunk, null_size - a)
        block = np.stack([null_ap(int(m), int(t), size, rng)
                          for (m, t), rng in zip(configs, streams, strict=True)])
        for g, (confs, counts) in enumerate(weights):
            null = np.zeros(size)
            for c, k in zip(confs, counts, strict=True):
                null += block[c] * float(k)
            exceed[g] += int((null / counts.sum() > scores[g]).sum())
    return exceed


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
                           threshold: float = DEFAULT_THRESHOLD,
                           chunk: int = NULL_CHUNK) -> pd.DataFrame:
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
    chunk
        Null samples drawn at a time (memory is bounded by it, not by ``null_size``).

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
    ap, g = res.ap[q], groups[q]
    names = sorted(np.unique(g))
    members = [np.flatnonzero(g == name) for name in names]
    scores = np.array([float(ap[m].mean()) for m in members])
    exceed = null_exceedances(uniq, [inv[m] for m in members], scores, null_size=null_size,
                              seed=seed, chunk=chunk)
    table = pd.DataFrame({"group": names, "mean_average_precision": scores,
                          "n_queries": [len(m) for m in members],
                          "p_value": (exceed + 1.0) / (null_size + 1.0)})
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
