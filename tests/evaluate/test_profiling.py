from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bioaug.errors import DataError
from bioaug.evaluate import profiling
from tests.evaluate.conftest import bbbc021_like

# Constructed design (angle in degrees of a 2-D profile; cosine = angle difference):
#  T0 cmpA@1 X B1 0°, T1 cmpA@2 X B1 1°, T2 cmpB Y B1 5°, T3 cmpC X B2 10°, T4 cmpD Y B2 90°,
#  T5 cmpE Z B3 180°, T6 cmpF Z B3 185°, DMSO B1 0.5° (control: never a query or reference).
DESIGN = [
    ("cmpA", 1.0, "X", "B1", 0.0), ("cmpA", 2.0, "X", "B1", 1.0), ("cmpB", 1.0, "Y", "B1", 5.0),
    ("cmpC", 1.0, "X", "B2", 10.0), ("cmpD", 1.0, "Y", "B2", 90.0),
    ("cmpE", 1.0, "Z", "B3", 180.0), ("cmpF", 1.0, "Z", "B3", 185.0),
    ("DMSO", 0.0, "DMSO", "B1", 0.5),
]


def design_cells() -> tuple[np.ndarray, pd.DataFrame]:
    rows, feats = [], []
    for t, (cmp, conc, moa, batch, angle) in enumerate(DESIGN):
        for w in range(2):
            for _ in range(3):
                rows.append({"plate": f"{batch}_p", "well": f"T{t}w{w}", "compound": cmp,
                             "concentration": conc, "batch": batch, "moa": moa})
                a = np.deg2rad(angle)
                feats.append([np.cos(a), np.sin(a)])
    return np.asarray(feats, dtype=np.float32), pd.DataFrame(rows)


def test_nsc_and_nscb_exclusion_rules():
    x, obs = design_cells()
    out = profiling.profile_scores(x, obs)
    nsc, nscb = out["nsc"], out["nscb"]
    assert out["n_control_treatments"] == 1 and out["n_wells"] == 16
    assert nsc["n_treatments"] == 7 and nsc["n_scored"] == 7
    # T0's nearest is T1 (same compound) → excluded; next is T2 (other MoA) → wrong
    rows = {(r["compound"], r["concentration"]): r for r in out["treatments"]}
    assert rows[("cmpA", "1.0")]["nsc_neighbour"] == "cmpB @ 1.0"
    assert rows[("cmpA", "1.0")]["nsc_predicted"] == "Y"
    assert nsc["n_correct"] == 2 and nsc["accuracy"] == pytest.approx(2 / 7)
    assert nsc["per_class"]["Z"]["accuracy"] == 1.0
    assert nsc["per_class"]["X"]["accuracy"] == 0.0
    # NSCB: Z lives in B3 only → dropped; same-batch T2 excluded for T0 → T3 (X) correct
    assert nscb["dropped_classes"] == ["Z"]
    assert nscb["n_treatments"] == 5 and nscb["n_classes"] == 2
    assert nscb["n_correct"] == 3 and nscb["accuracy"] == pytest.approx(3 / 5)
    assert nscb["per_class"]["X"] == {"accuracy": pytest.approx(2 / 3), "n_treatments": 3,
                                      "n_scored": 3}


def test_multi_batch_treatment_excludes_every_shared_batch():
    # query 0 spans B1 and B2; ref 1 (B2) is nearest but shares B2; ref 2 (B3) is admissible
    prof = np.array([[1.0, 0.0], [1.0, 0.1], [1.0, 0.5], [0.0, 1.0]])
    res = profiling.nearest_neighbour_moa(
        prof, np.array(["X", "Y", "X", "Y"]), np.array(["a", "b", "c", "d"]),
        [frozenset({"B1", "B2"}), frozenset({"B2"}), frozenset({"B3"}), frozenset({"B1"})])
    assert res["neighbour"][0] == 2 and res["correct"][0]
    # ref 3 (B1) can only reach B2/B3 items; without batches the nearest would differ
    res_nsc = profiling.nearest_neighbour_moa(
        prof, np.array(["X", "Y", "X", "Y"]), np.array(["a", "b", "c", "d"]))
    assert res_nsc["neighbour"][0] == 1 and not res_nsc["correct"][0]


def test_query_without_admissible_reference_is_reported():
    prof = np.eye(3)
    res = profiling.nearest_neighbour_moa(
        prof, np.array(["X", "X", "Y"]), np.array(["a", "b", "c"]),
        [frozenset({"B1", "B2"}), frozenset({"B1"}), frozenset({"B2"})])
    assert res["neighbour"][0] == -1 and not res["has_reference"][0]
    assert res["has_reference"][1:].all()


def test_one_batch_labels_rule():
    labels = np.array(["A", "A", "B", "B", "C"])
    sets = [frozenset({"w1"}), frozenset({"w1"}), frozenset({"w1"}), frozenset({"w2"}),
            frozenset({"w1", "w3"})]
    assert profiling.one_batch_labels(labels, sets) == ["A"]


def test_blobs_give_nsc_one():
    x, obs = bbbc021_like(spread=10.0)
    out = profiling.profile_scores(x, obs)
    assert out["nsc"]["accuracy"] == 1.0 and out["nsc"]["map"] == pytest.approx(1.0)
    assert out["nsc"]["n_treatments"] == 4 * 3 * 2
    assert out["nscb"]["accuracy"] == 1.0


def test_random_profiles_are_near_chance():
    x, obs = bbbc021_like(n_moa=6, compounds_per_moa=4, spread=0.0, seed=4)
    out = profiling.profile_scores(x, obs)
    assert out["nsc"]["accuracy"] < 0.5  # chance is ~1/6


def _real_well_table(csv_dir) -> pd.DataFrame:
    img = pd.read_csv(csv_dir / "BBBC021_v1_image.csv")
    moa = pd.read_csv(csv_dir / "BBBC021_v1_moa.csv")
    wells = img.rename(columns={"Image_Metadata_Plate_DAPI": "plate",
                                "Image_Metadata_Well_DAPI": "well",
                                "Image_Metadata_Compound": "compound",
                                "Image_Metadata_Concentration": "concentration"})
    wells = wells.drop_duplicates(["plate", "well"])[["plate", "well", "compound",
                                                      "concentration"]]
    wells["batch"] = wells["plate"].str.split("_").str[0]
    return wells.merge(moa, on=["compound", "concentration"], how="left")


def test_real_bbbc021_design_counts(bbbc021_csv_dir):
    wells = _real_well_table(bbbc021_csv_dir)
    x = np.random.default_rng(0).normal(size=(len(wells), 8)).astype(np.float32)
    out = profiling.profile_scores(x, wells)
    assert out["nsc"]["n_treatments"] == 103
    assert out["nscb"]["n_treatments"] == 92
    assert sorted(out["nscb"]["dropped_classes"]) == ["Cholesterol-lowering",
                                                      "Kinase inhibitors"]
    assert out["nsc"]["n_classes"] == 12 and out["nscb"]["n_classes"] == 10
    assert out["n_control_treatments"] == 1
    # the taxol control found in every week shares a batch with every other treatment
    assert out["nscb"]["unscorable"] == ["taxol @ 0.3"]


def test_missing_columns_are_named():
    x, obs = bbbc021_like()
    with pytest.raises(DataError, match=r"\['batch'\].*plate"):
        profiling.profile_scores(x, obs.drop(columns="batch"))


def test_compound_varying_inside_a_well_is_an_error():
    x, obs = bbbc021_like()
    obs.loc[obs.index[0], "compound"] = "other"
    with pytest.raises(DataError, match="'compound' is not constant within a well"):
        profiling.profile_scores(x, obs)


def _design_with(vectors: dict[int, list[float]]) -> tuple[np.ndarray, pd.DataFrame]:
    """The constructed design with treatment ``t``'s cells at ``vectors[t]``."""
    _, obs = design_cells()
    t = obs["well"].str.slice(1, 2).astype(int).to_numpy()
    return np.asarray([vectors[i] for i in t], dtype=np.float32), obs


def test_constant_embedding_scores_chance_not_perfection():
    x, obs = _design_with({t: [1.0, 0.0] for t in range(len(DESIGN))})
    out = profiling.profile_scores(x, obs, null_size=500)
    # NSC: every admissible reference ties; a query scores the fraction with its MoA:
    # T0, T1 (X): 1 of 5 (T3); T2, T4 (Y): 1 of 6; T3 (X): 2 of 6; T5, T6 (Z): 1 of 6
    assert out["nsc"]["n_correct"] == pytest.approx(2 / 5 + 4 / 6 + 2 / 6)
    assert out["nsc"]["accuracy"] == pytest.approx(1.4 / 7)
    assert out["nsc"]["n_tied_queries"] == 7
    # expected AP of m positives among t tied partners: m=1,t=5: 137/300; m=1,t=6: 49/120;
    # m=2,t=6: 79/150 (T3)
    assert out["nsc"]["map"] == pytest.approx((2 * 137 / 300 + 4 * 49 / 120 + 79 / 150) / 7)
    moa = {g["group"]: g["mean_average_precision"] for g in out["moa"]["groups"]}
    assert moa == pytest.approx({"X": (2 * 137 / 300 + 79 / 150) / 3, "Y": 49 / 120,
                                 "Z": 49 / 120})
    assert out["moa"]["fraction_retrieved"] == 0.0
    # replicate: each treated well has 1 positive (its other well) among 3 (+ 2 DMSO wells)
    assert out["replicate"]["map"] == pytest.approx(11 / 18)
    assert out["replicate"]["fraction_retrieved"] == 0.0


def test_two_valued_embedding_ties_count_fractionally():
    # T0, T1, T2 at a = (1, 0); T3 … T6 (and DMSO) at b = (0, 1). Nearest admissible ties:
    # T0, T1 → {T2} (Y): 0; T2 → {T0, T1} (X): 0; T3 → {T4, T5, T6}: 0;
    # T4 → {T3, T5, T6}: 0; T5 → {T3, T4, T6}: 1/3 (T6); T6 → {T3, T4, T5}: 1/3 (T5)
    a, b = [1.0, 0.0], [0.0, 1.0]
    x, obs = _design_with({0: a, 1: a, 2: a, 3: b, 4: b, 5: b, 6: b, 7: b})
    nsc = profiling.profile_scores(x, obs, null_size=100)["nsc"]
    assert nsc["n_correct"] == pytest.approx(2 / 3)
    assert nsc["accuracy"] == pytest.approx(2 / 21)
    assert nsc["per_class"]["Z"]["accuracy"] == pytest.approx(1 / 3)
    assert nsc["n_tied_queries"] == 7 - 2  # T0 and T1 have one nearest reference
