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
