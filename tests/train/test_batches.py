"""Batch compositions (``--batches``) and the sampler's split across processes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bioaug.errors import ConfigError, DataError
from bioaug.train.batches import (
    BATCHES,
    BatchSpec,
    batches_help,
    build_batch_plan,
    parse_batches,
    sampling_record,
)
from bioaug.train.data import EpochBatchSampler, epoch_permutation
from bioaug.train.pairs import ObsColumns, build_pair_index


def screen_obs(seed: int = 0) -> pd.DataFrame:
    """4 plates of unequal size (30, 20, 12, 8 cells); 10 treatments of 3 to 12 cells."""
    rng = np.random.default_rng(seed)
    plates = np.repeat(["P1", "P2", "P3", "P4"], [30, 20, 12, 8])
    compounds = np.array([f"T{i}" for i in range(10)])[rng.permutation(np.arange(70) % 10)]
    compounds[:3] = "T0"  # uneven treatment sizes
    return pd.DataFrame({"plate": plates, "well": "A01", "compound": compounds,
                         "concentration": 1.0})


def test_parse_and_help_come_from_the_registry():
    assert list(BATCHES) == ["random", "plate_balanced", "per_treatment"]
    assert batches_help() == "random | plate_balanced | per_treatment K"
    assert parse_batches("per_treatment 4") == BatchSpec("per_treatment", 4)
    assert parse_batches("per_treatment:4") == parse_batches(" per_treatment  4 ")
    assert str(parse_batches("plate_balanced")) == "plate_balanced"
    with pytest.raises(ConfigError, match="did you mean 'plate_balanced'"):
        parse_batches("plate_balance")
    with pytest.raises(ConfigError, match="needs a count"):
        parse_batches("per_treatment")
    with pytest.raises(ConfigError, match="takes no number"):
        parse_batches("random 3")


def test_random_is_the_epoch_permutation():
    plan = build_batch_plan(screen_obs(), "random", ObsColumns(), 16)
    batches = plan.epoch(3, 1)
    assert batches.shape == (70 // 16, 16)
    assert np.array_equal(batches.ravel(), epoch_permutation(70, 3, 1)[:64])


def test_plate_balanced_batches_draw_evenly_from_every_plate():
    obs = screen_obs()
    plan = build_batch_plan(obs, "plate_balanced", ObsColumns(), 16)
    plates = obs["plate"].to_numpy()
    for epoch in range(3):
        batches = plan.epoch(0, epoch)
        assert batches.shape == (4, 16)
        for batch in batches:
            counts = pd.Series(plates[batch]).value_counts()
            assert len(counts) == 4 and set(counts) == {4}
            for half in (batch[:8], batch[8:]):  # each of 2 processes is balanced too
                assert set(pd.Series(plates[half]).value_counts()) == {2}
            assert len(set(batch.tolist())) == 16
    # a batch size that is not a multiple: counts differ by at most one, extras rotate
    plan = build_batch_plan(obs, "plate_balanced", ObsColumns(), 10)
    extra = []
    for batch in plan.epoch(1, 0):
        counts = pd.Series(plates[batch]).value_counts()
        assert counts.max() - counts.min() <= 1 and counts.sum() == 10
        extra += counts[counts == 3].index.tolist()
    assert len(set(extra)) == 4  # every plate gets the extra cell in turn


@pytest.mark.parametrize("k", [2, 4])
def test_per_treatment_k_cells_of_each_treatment(k):
    obs = screen_obs()
    plan = build_batch_plan(obs, f"per_treatment {k}", ObsColumns(), 16)
    comp = obs["compound"].to_numpy()
    seen: list[int] = []
    for batch in plan.epoch(2, 0):
        counts = pd.Series(comp[batch]).value_counts()
        assert len(counts) == 16 // k and set(counts) == {k}
        for g in range(16 // k):  # K cells of one treatment sit together
            assert len(set(comp[batch[g * k:(g + 1) * k]])) == 1
        seen += batch.tolist()
    assert len(set(seen)) >= 0.8 * len(seen)  # close to one pass over the store


def test_per_treatment_errors():
    obs = screen_obs()
    with pytest.raises(ConfigError, match="not a multiple of 3"):
        build_batch_plan(obs, "per_treatment 3", ObsColumns(), 16)
    with pytest.raises(ConfigError, match="needs 16 treatments"):
        build_batch_plan(obs, "per_treatment 1", ObsColumns(), 16)
    with pytest.raises(DataError, match="'concentration'"):
        build_batch_plan(obs.drop(columns="concentration"), "per_treatment 2", ObsColumns(), 16)


@pytest.mark.parametrize("batches", ["random", "plate_balanced", "per_treatment 2"])
def test_deterministic_for_a_seed(batches):
    obs = screen_obs()
    a = build_batch_plan(obs, batches, ObsColumns(), 16)
    b = build_batch_plan(obs, batches, ObsColumns(), 16)
    assert np.array_equal(a.epoch(7, 3), b.epoch(7, 3))
    assert not np.array_equal(a.epoch(7, 3), a.epoch(8, 3))
    assert not np.array_equal(a.epoch(7, 3), a.epoch(7, 4))


@pytest.mark.parametrize("batches", ["random", "plate_balanced", "per_treatment 2"])
def test_ranks_split_each_global_batch_of_pairs(batches):
    obs = screen_obs()
    plan = build_batch_plan(obs, batches, ObsColumns(), 16)
    pairs = build_pair_index(obs, "same_treatment_other_plate", ObsColumns())
    kw = {"seed": 1, "epoch": 2, "plan": plan, "pairs": pairs}
    whole = list(EpochBatchSampler(70, 16, **kw))
    shards = [list(EpochBatchSampler(70, 16, rank=r, world_size=2, **kw)) for r in range(2)]
    for step, batch in enumerate(whole):
        anchors, partners = batch[:16], batch[16:]
        parts = [shards[r][step] for r in range(2)]
        assert np.array_equal(np.concatenate([p[:8] for p in parts]), anchors)
        assert np.array_equal(np.concatenate([p[8:] for p in parts]), partners)
        assert not set(parts[0][:8]) & set(parts[1][:8])
    resumed = list(EpochBatchSampler(70, 16, start_batch=2, **kw))
    assert all(np.array_equal(a, b) for a, b in zip(resumed, whole[2:], strict=True))


def test_sampling_record_names_the_columns_read():
    rec = sampling_record({"positives": "same_treatment_other_plate",
                           "batches": "plate_balanced", "plate_column": "Plate"})
    assert rec == {"positives": "same_treatment_other_plate", "batches": "plate_balanced",
                   "obs_columns": ["compound", "concentration", "Plate"],
                   "positive_columns": ["compound", "concentration"]}
    assert sampling_record({})["obs_columns"] == []


def test_docs_tables_list_the_registries():
    """docs/training.md has one row per positives rule and per batch composition."""
    import re
    from pathlib import Path

    from bioaug.train.pairs import POSITIVES

    doc = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    doc = doc.split("## Positive pairs", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)[ `]", doc, flags=re.MULTILINE)
    assert [r for r in rows if r in POSITIVES] == list(POSITIVES)
    assert [r for r in rows if r in BATCHES] == list(BATCHES)
    assert set(rows) <= set(POSITIVES) | set(BATCHES)
