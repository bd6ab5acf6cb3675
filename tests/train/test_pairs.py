"""Known-answer tests of the positive-pair sampler (``--positives``) and its views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bioaug.errors import ConfigError, DataError
from bioaug.train.pairs import (
    POSITIVES,
    ObsColumns,
    PairedViews,
    build_pair_index,
    pair_rng,
    parse_control,
    positive_columns,
    split_pair,
)

#: (compound, concentration, plate, well, cells): A on three plates, B on one, C on two,
#: a one-cell treatment, and DMSO (two concentrations: the controls are one pooled group)
DESIGN = [
    ("A", 1.0, "P1", "A01", 2), ("A", 1.0, "P2", "A01", 2), ("A", 1.0, "P3", "A01", 2),
    ("B", 1.0, "P1", "B01", 3),
    ("C", 1.0, "P2", "C01", 2), ("C", 1.0, "P3", "C01", 1),
    ("A", 2.0, "P1", "A02", 1),
    ("DMSO", 0.0, "P1", "D01", 2), ("DMSO", 0.0, "P2", "D01", 2),
    ("DMSO", 0.0, "P3", "D01", 2), ("DMSO", 0.1, "P1", "D02", 1),
]


def design_obs(seed: int = 0) -> pd.DataFrame:
    rows = [{"compound": c, "concentration": k, "plate": p, "well": w}
            for c, k, p, w, n in DESIGN for _ in range(n)]
    obs = pd.DataFrame(rows)
    return obs.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # rows mixed up


def all_pairs(obs: pd.DataFrame, positives: str, seed: int = 0, draws: int = 1
              ) -> tuple[np.ndarray, np.ndarray]:
    index = build_pair_index(obs, positives, ObsColumns())
    anchors = np.tile(np.arange(len(obs)), draws)
    return anchors, index.partners(anchors, pair_rng(seed, 0, 0))


def treatment(obs: pd.DataFrame, i: np.ndarray) -> list[tuple[str, float]]:
    return list(zip(obs["compound"].to_numpy()[i], obs["concentration"].to_numpy()[i],
                    strict=True))


def test_registry_is_the_list_of_choices():
    assert list(POSITIVES) == ["same_cell", "same_well", "same_treatment",
                               "same_treatment_other_plate"]
    assert build_pair_index(design_obs(), "same_cell", ObsColumns()) is None


@pytest.mark.parametrize("positives", ["same_treatment", "same_treatment_other_plate"])
def test_each_pair_shares_the_treatment_and_controls_pair_across_plates(positives):
    obs = design_obs()
    a, p = all_pairs(obs, positives, draws=20)
    control = obs["compound"].to_numpy() == "DMSO"
    plate = obs["plate"].to_numpy()
    ta, tp = treatment(obs, a), treatment(obs, p)
    for i, j, x, y in zip(a, p, ta, tp, strict=True):
        if control[i]:  # controls: any DMSO concentration, always another plate
            assert control[j] and plate[i] != plate[j]
        else:
            assert x == y
    singleton = np.flatnonzero((obs["compound"] == "A") & (obs["concentration"] == 2.0))
    assert np.all(p[np.isin(a, singleton)] == a[np.isin(a, singleton)])  # one cell: itself
    many = ~np.isin(a, singleton)
    assert np.all(p[many] != a[many])  # never the anchor when the group has other cells


def test_other_plate_whenever_the_treatment_is_on_several():
    obs = design_obs(1)
    a, p = all_pairs(obs, "same_treatment_other_plate", draws=30)
    plate, comp = obs["plate"].to_numpy(), obs["compound"].to_numpy()
    several = np.isin(comp[a], ["A", "C", "DMSO"]) & ~((comp[a] == "A")
                                                      & (obs["concentration"].to_numpy()[a] == 2))
    assert np.all(plate[a[several]] != plate[p[several]])
    only_b = comp[a] == "B"  # B is on one plate: another cell of that plate
    assert np.all(plate[p[only_b]] == "P1") and np.all(p[only_b] != a[only_b])
    # every admissible partner is drawn: C on P3 pairs with both C cells of P2
    c3 = np.flatnonzero((comp == "C") & (plate == "P3"))[0]
    assert set(p[a == c3]) == set(np.flatnonzero((comp == "C") & (plate == "P2")))


def test_same_treatment_may_stay_on_the_plate_but_controls_may_not():
    obs = design_obs(2)
    a, p = all_pairs(obs, "same_treatment", draws=200)
    comp, plate = obs["compound"].to_numpy(), obs["plate"].to_numpy()
    a_cells = np.flatnonzero((comp == "A") & (obs["concentration"].to_numpy() == 1.0))
    first = a_cells[0]
    assert set(p[a == first]) == set(a_cells) - {first}  # same plate included
    ctrl = comp[a] == "DMSO"
    assert np.all(plate[a[ctrl]] != plate[p[ctrl]])


def test_same_well_pairs_stay_in_the_well():
    obs = design_obs(3)
    a, p = all_pairs(obs, "same_well", draws=10)
    for col in ("plate", "well"):
        assert np.array_equal(obs[col].to_numpy()[a], obs[col].to_numpy()[p])
    assert positive_columns({"positives": "same_well"}) == ["plate", "well"]


def test_same_pairs_for_the_same_seed_and_other_pairs_for_another():
    obs = design_obs()
    index = build_pair_index(obs, "same_treatment_other_plate", ObsColumns())
    anchors = np.arange(len(obs))
    one = index.partners(anchors, pair_rng(5, 2, 7))
    assert np.array_equal(one, index.partners(anchors, pair_rng(5, 2, 7)))
    assert not np.array_equal(one, index.partners(anchors, pair_rng(6, 2, 7)))
    assert not np.array_equal(one, index.partners(anchors, pair_rng(5, 2, 8)))


def test_named_columns_and_no_control():
    obs = design_obs().rename(columns={"compound": "drug", "plate": "Plate"})
    cols = ObsColumns(treatment=("drug", "concentration"), plate="Plate", control=None)
    index = build_pair_index(obs, "same_treatment_other_plate", cols)
    a = np.arange(len(obs))
    p = index.partners(a, pair_rng(0, 0, 0))
    assert np.array_equal(obs["drug"].to_numpy()[a], obs["drug"].to_numpy()[p])


def test_missing_columns_are_named_with_what_there_is():
    obs = design_obs().rename(columns={"compound": "Compound"})
    with pytest.raises(DataError) as info:
        build_pair_index(obs, "same_treatment", ObsColumns())
    msg = info.value.format()
    assert "'compound'" in msg and "did you mean 'Compound'" in msg
    assert "Compound, concentration, plate, well" in msg and "--treatment-columns" in msg
    with pytest.raises(DataError, match="'well'"):
        build_pair_index(obs.drop(columns="well"), "same_well", ObsColumns())


def test_control_query():
    assert parse_control("compound=DMSO") == ("compound", "DMSO")
    assert parse_control("none") is None and parse_control(None) is None
    with pytest.raises(ConfigError, match="COLUMN=VALUE"):
        parse_control("DMSO")


# -- views ---------------------------------------------------------------------------------
def _pipeline(folder, n_views: int):
    from bioaug.augment import build_pipeline
    from bioaug.augment.protocols import load_protocol

    view = ("  - crop_size: 12\n    steps:\n"
            "      - random_resized_crop: {scale: [0.5, 1.0], p: 1.0}\n"
            "      - flip: {horizontal: true, p: 0.5}\n")
    path = folder / "pairs.yaml"
    path.write_text("bioaug_protocol: 1\nname: pairs-test\nviews:\n" + view * n_views,
                    encoding="utf-8")
    return build_pipeline(load_protocol(path), 2)


@pytest.mark.parametrize("n_views", [2, 3])
def test_paired_views_take_odd_views_from_the_partners(n_views, tmp_path):
    pipe = _pipeline(tmp_path, n_views)
    g = torch.Generator().manual_seed(0)
    x, other = torch.rand(6, 2, 16, 16, generator=g), torch.rand(6, 2, 16, 16, generator=g)
    params = pipe.sample(6, (2, 16, 16), torch.Generator().manual_seed(1))
    views = PairedViews(pipe)
    same = [v.clone() for v in views(x, x, params)]
    plain = [v.clone() for v in pipe.apply(x, params)]
    assert all(torch.allclose(a, b) for a, b in zip(same, plain, strict=True))
    mixed = [v.clone() for v in views(x, other, params)]
    from_other = [v.clone() for v in pipe.apply(other, params)]
    assert len(mixed) == n_views
    for v in range(n_views):
        want = plain[v] if v % 2 == 0 else from_other[v]
        assert torch.allclose(mixed[v], want), v
    assert views(x, None, params)[0].shape == plain[0].shape


def test_split_pair():
    x = torch.arange(8.0).reshape(8, 1, 1, 1)
    anchors, partners = split_pair(x, True)
    assert anchors.flatten().tolist() == [0, 1, 2, 3] and partners.flatten().tolist() == [4, 5,
                                                                                           6, 7]
    assert split_pair(x, False)[1] is None
