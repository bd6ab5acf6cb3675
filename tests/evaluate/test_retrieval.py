"""mAP with permutation p-values: known answers, the null, agreement with copairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bioaug.evaluate import retrieval as R
from bioaug.evaluate.retrieval import PairRule


def test_ap_of_a_perfect_and_of_a_known_ranking():
    sim = np.array([[0.0, 0.9, 0.8, 0.1, 0.2]])
    pos = np.array([[False, True, True, False, False]])
    neg = np.array([[False, False, False, True, True]])
    ap, m, t = R.ap_from_ranking(sim, pos, neg)
    assert ap[0] == 1.0 and m[0] == 2 and t[0] == 4
    # positives ranked 1st and 3rd: AP = (1/1 + 2/3) / 2
    sim2 = np.array([[0.0, 0.9, 0.3, 0.5, 0.2]])
    assert R.ap_from_ranking(sim2, pos, neg)[0][0] == pytest.approx((1 + 2 / 3) / 2)


def _random_profiles(n_groups=12, per=4, n_ctrl=16, dims=8, signal=0.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, dims)) * signal
    x = np.vstack([centres[g] + rng.normal(size=(per, dims)) for g in range(n_groups)]
                  + [rng.normal(size=(n_ctrl, dims))])
    treatment = [f"t{g}" for g in range(n_groups) for _ in range(per)] + ["DMSO"] * n_ctrl
    is_ctrl = np.array([False] * (n_groups * per) + [True] * n_ctrl)
    meta = pd.DataFrame({"treatment": treatment,
                         "reference": np.where(is_ctrl, np.arange(len(x)), -1)})
    return x, meta


REPLICATE = (PairRule(same=("treatment", "reference")), PairRule(diff=("treatment", "reference")))


def test_perfect_retrieval_is_significant_and_random_is_not():
    x, meta = _random_profiles(signal=20.0)
    res = R.average_precision(x, meta, *REPLICATE)
    table = R.mean_average_precision(res, meta["treatment"], null_size=500, seed=0)
    assert len(table) == 12 and (table["mean_average_precision"] == 1.0).all()
    assert (table["p_value"] == 1 / 501).all() and table["below_corrected_p"].all()
    x, meta = _random_profiles(signal=0.0)
    res = R.average_precision(x, meta, *REPLICATE)
    table = R.mean_average_precision(res, meta["treatment"], null_size=500, seed=0)
    assert table["below_corrected_p"].mean() < 0.2


def test_p_values_are_uniform_under_the_null():
    from scipy.stats import kstest

    # one query per group (its own row), many partners: AP is close to continuous, so its
    # permutation p-value is uniform when features carry no signal
    ps = []
    for seed in range(3):
        x, meta = _random_profiles(n_groups=25, per=6, n_ctrl=80, seed=seed)
        res = R.average_precision(x, meta, *REPLICATE)
        ps += R.mean_average_precision(res, np.arange(len(x)), null_size=2000,
                                       seed=seed)["p_value"].tolist()
    assert len(ps) == 450
    assert kstest(ps, "uniform").pvalue > 0.01
    # and with signal they are not
    x, meta = _random_profiles(n_groups=25, per=6, n_ctrl=80, signal=0.5, seed=9)
    res = R.average_precision(x, meta, *REPLICATE)
    signal = R.mean_average_precision(res, np.arange(len(x)), null_size=2000, seed=9)
    assert kstest(signal["p_value"], "uniform").pvalue < 1e-6


def test_fdr_bh_known_values():
    p = np.array([0.01, 0.04, 0.03, 0.5, np.nan])
    # sorted 0.01, 0.03, 0.04, 0.5 (m = 4): 0.04, 0.06, 0.0533, 0.5 → monotone from the top
    np.testing.assert_allclose(R.fdr_bh(p), [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5, np.nan])


def test_agrees_with_copairs(tmp_path):
    copairs_map = pytest.importorskip("copairs.map")
    from statsmodels.stats.multitest import multipletests

    x, meta = _random_profiles(n_groups=10, per=4, n_ctrl=12, signal=0.7, seed=3)
    res = R.average_precision(x, meta, *REPLICATE)
    theirs = copairs_map.average_precision(
        meta, x, pos_sameby=["treatment", "reference"], pos_diffby=[], neg_sameby=[],
        neg_diffby=["treatment", "reference"], batch_size=1000, progress_bar=False)
    queries = theirs["n_pos_pairs"] > 0
    np.testing.assert_allclose(res.ap[queries], theirs.loc[queries, "average_precision"],
                               atol=1e-6)
    np.testing.assert_array_equal(res.n_pos[queries], theirs.loc[queries, "n_pos_pairs"])
    np.testing.assert_array_equal(res.n_total[queries], theirs.loc[queries, "n_total_pairs"])
    ours = R.mean_average_precision(res, meta["treatment"], null_size=4000, seed=0)
    their_map = copairs_map.mean_average_precision(
        theirs, sameby=["treatment"], null_size=4000, threshold=0.05, seed=0,
        progress_bar=False, cache_dir=tmp_path).sort_values("treatment")
    np.testing.assert_allclose(ours["mean_average_precision"],
                               their_map["mean_average_precision"], atol=1e-6)
    # the null samples differ (each library draws its own): p-values agree in distribution
    np.testing.assert_allclose(ours["p_value"], their_map["p_value"], atol=0.03)
    # the same p-values give the same FDR correction
    theirs_p = their_map["p_value"].to_numpy()
    np.testing.assert_allclose(R.fdr_bh(theirs_p), multipletests(theirs_p, method="fdr_bh")[1],
                               atol=1e-12)


def test_moa_retrieval_rules_agree_with_copairs(tmp_path):
    copairs_map = pytest.importorskip("copairs.map")
    rng = np.random.default_rng(5)
    moa = np.repeat([f"m{i}" for i in range(4)], 6)
    compound = [f"c{i // 2}" for i in range(24)]
    x = rng.normal(size=(4, 10))[np.repeat(np.arange(4), 6)] * 0.8 + rng.normal(size=(24, 10))
    meta = pd.DataFrame({"moa": moa, "compound": compound})
    res = R.average_precision(x, meta, PairRule(same=("moa",), diff=("compound",)),
                              PairRule(diff=("moa",)))
    theirs = copairs_map.average_precision(meta, x, pos_sameby=["moa"],
                                           pos_diffby=["compound"], neg_sameby=[],
                                           neg_diffby=["moa"], progress_bar=False)
    np.testing.assert_allclose(res.ap, theirs["average_precision"], atol=1e-6)


def test_tied_partners_score_the_expectation_over_their_orders():
    # one tie of 4 partners, 2 positives: the 6 placements give AP 1, 5/6, 3/4, 7/12, 1/2,
    # 5/12 (positives at ranks {1,2}, {1,3}, {1,4}, {2,3}, {2,4}, {3,4}): mean 49/72
    sim = np.array([[0.0, 0.3, 0.3, 0.3, 0.3]])
    pos = np.array([[False, True, False, True, False]])
    neg = np.array([[False, False, True, False, True]])
    assert R.ap_from_ranking(sim, pos, neg)[0][0] == pytest.approx(49 / 72)
    # the positives' places in the table do not matter: a tie never favours them
    assert R.ap_from_ranking(sim, neg, pos)[0][0] == pytest.approx(49 / 72)


def test_two_valued_embedding_known_answer():
    # profiles a = (1, 0) or b = (0, 1); query 0 (a, group g) has partners 1 (a, g: positive),
    # 2 (a, h), 3 (b, g: positive), 4 (b, h), 5 (b, k). Ranked: {1, 2} tied at cosine 1,
    # then {3, 4, 5} tied at 0. The first positive is at rank 1 or 2 (precision 1 or 1/2:
    # 3/4 on average); the second at rank 3, 4 or 5 with one positive before it
    # (precision 2/3, 2/4, 2/5: 47/90 on average). AP = (3/4 + 47/90) / 2 = 229/360.
    a, b = [1.0, 0.0], [0.0, 1.0]
    x = np.array([a, a, a, b, b, b])
    meta = pd.DataFrame({"group": ["g", "g", "h", "g", "h", "k"]})
    res = R.average_precision(x, meta, PairRule(same=("group",)), PairRule(diff=("group",)))
    assert res.ap[0] == pytest.approx(229 / 360)
    assert (res.n_pos[0], res.n_total[0]) == (2, 5)


def test_constant_embedding_scores_chance_and_is_never_retrieved():
    # 2 MoAs x 2 compounds: each query has 1 positive (same MoA, other compound) among 3
    # partners, all tied: AP = (1/3)(1 + 1/2 + 1/3) = 11/18, the mean of the null
    x = np.ones((4, 5))
    meta = pd.DataFrame({"moa": ["m0", "m0", "m1", "m1"], "compound": ["c0", "c1", "c2", "c3"]})
    res = R.average_precision(x, meta, PairRule(same=("moa",), diff=("compound",)),
                              PairRule(diff=("moa",)))
    np.testing.assert_allclose(res.ap, 11 / 18)
    table = R.mean_average_precision(res, meta["moa"], null_size=2000, seed=0)
    np.testing.assert_allclose(table["mean_average_precision"], 11 / 18)
    assert not table["below_corrected_p"].any()
    null = R.null_ap(1, 3, 20_000, np.random.default_rng(0))
    assert null.mean() == pytest.approx(11 / 18, abs=0.01)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_untied_random_data_agrees_with_copairs(seed):
    copairs_map = pytest.importorskip("copairs.map")
    x, meta = _random_profiles(n_groups=8, per=3, n_ctrl=10, signal=0.5, seed=seed)
    u = R.unit_rows(x)
    sims = np.sort((u @ u.T)[np.triu_indices(len(x), 1)])
    assert np.diff(sims).min() > R.TIE_TOLERANCE  # no ties in this data
    res = R.average_precision(x, meta, *REPLICATE)
    theirs = copairs_map.average_precision(
        meta, x, pos_sameby=["treatment", "reference"], pos_diffby=[], neg_sameby=[],
        neg_diffby=["treatment", "reference"], batch_size=1000, progress_bar=False)
    queries = theirs["n_pos_pairs"] > 0
    np.testing.assert_allclose(res.ap[queries], theirs.loc[queries, "average_precision"],
                               atol=1e-6)


def test_the_null_is_the_same_in_any_chunks():
    x, meta = _random_profiles(n_groups=6, per=3, n_ctrl=9, signal=0.3, seed=4)
    res = R.average_precision(x, meta, *REPLICATE)
    whole = R.mean_average_precision(res, meta["treatment"], null_size=3000, seed=7)
    pieces = R.mean_average_precision(res, meta["treatment"], null_size=3000, seed=7, chunk=7)
    pd.testing.assert_frame_equal(whole, pieces)


def test_null_memory_does_not_grow_with_null_size(monkeypatch):
    import tracemalloc

    monkeypatch.setattr(R, "NULL_CHUNK_KEYS", 1 << 14)
    x, meta = _random_profiles(n_groups=4, per=3, n_ctrl=40, signal=0.3, seed=5)
    res = R.average_precision(x, meta, *REPLICATE)

    def peak(null_size: int) -> int:
        tracemalloc.start()
        R.mean_average_precision(res, meta["treatment"], null_size=null_size, seed=0,
                                 chunk=1000)
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    small, large = peak(2_000), peak(100_000)
    # drawn at once, 100,000 samples x 42 partners of random keys alone are 34 MB
    assert large < 2 * small + (1 << 20), (small, large)


def _ap_over_every_order(sim: np.ndarray, pos: np.ndarray) -> float:
    """The mean AP over every order of the tied partners, by enumeration."""
    import itertools

    levels = sorted(set(sim.tolist()), reverse=True)
    groups = [[bool(p) for s, p in zip(sim, pos, strict=True) if s == v] for v in levels]
    aps = []
    for order in itertools.product(*(set(itertools.permutations(g)) for g in groups)):
        rel = np.concatenate(order)
        hits = np.flatnonzero(rel) + 1
        aps.append(np.mean(np.arange(1, len(hits) + 1) / hits))
    return float(np.mean(aps))


def test_expected_ap_equals_the_enumeration_of_tied_orders():
    rng = np.random.default_rng(0)
    for _ in range(40):
        sim = rng.choice([0.1, 0.5, 0.9], size=7)
        pos = rng.random(7) < 0.4
        pos[rng.integers(7)] = True
        ap = R.ap_from_ranking(sim[None], pos[None], ~pos[None])[0][0]
        assert ap == pytest.approx(_ap_over_every_order(sim, pos), abs=1e-12)
