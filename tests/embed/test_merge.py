from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bioaug.embed import embed, merge_files, merge_shards, write_h5ad
from bioaug.embed.embed import parse_shard, shard_items
from bioaug.errors import ConfigError, DataError


def test_shards_are_contiguous_disjoint_and_cover_every_item():
    for n_items in (1, 7, 48, 100):
        for count in range(1, min(n_items, 6) + 1):
            blocks = [shard_items(n_items, (i, count)) for i in range(count)]
            assert [i for b in blocks for i in b] == list(range(n_items))
            assert max(len(b) for b in blocks) - min(len(b) for b in blocks) <= 1


def test_parse_shard():
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "1/0", "1/2/3"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)


@pytest.fixture(scope="module")
def full_and_shards(tiny_run, tiny_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    full = embed([tiny_run], tiny_store, device="cpu", batch_size=7)
    files = []
    for i in (1, 0, 2):  # any order
        part = embed([tiny_run], tiny_store, device="cpu", batch_size=7, shard=f"{i}/3")
        files.append(write_h5ad(part, root / f"cells.{i}.h5ad"))
    return full, files


def test_shards_then_merge_equal_one_full_embed(full_and_shards):
    full, files = full_and_shards
    merged = merge_files(files)
    assert merged.n_obs == full.n_obs == 48
    assert list(merged.obs.index) == list(full.obs.index)
    pd.testing.assert_frame_equal(merged.obs, full.obs)
    np.testing.assert_allclose(merged.obsm["X_bioaug"], full.obsm["X_bioaug"], atol=1e-5)
    assert "shard" not in merged.uns["bioaug"]
    assert merged.uns["bioaug"]["merged_shards"]["files"] == sorted(map(str, files))


def test_raw_shards_merge_bit_exactly(tiny_store):
    full = embed(raw=True, data=tiny_store)
    parts = [embed(raw=True, data=tiny_store, shard=(i, 2)) for i in (0, 1)]
    assert [p.n_obs for p in parts] == [24, 24]
    assert parts[1].uns["bioaug"]["shard"] == {"index": 1, "count": 2, "start": 24, "stop": 48}
    merged = merge_shards(parts)
    assert np.array_equal(merged.obsm["X_bioaug"], full.obsm["X_bioaug"])


def test_merge_refuses_shards_that_do_not_belong_together(full_and_shards, tiny_run_b,
                                                          tiny_store):
    import anndata as ad

    _, files = full_and_shards
    shards = sorted((ad.read_h5ad(f) for f in files),
                    key=lambda a: int(a.uns["bioaug"]["shard"]["index"]))
    with pytest.raises(DataError, match=r"shards 1/3 are missing"):
        merge_shards([shards[0], shards[2]])
    with pytest.raises(DataError, match=r"shard 1/3 is given twice"):
        merge_shards([shards[1], shards[1], shards[0], shards[2]])
    other = embed([tiny_run_b], tiny_store, device="cpu", shard="0/3")
    with pytest.raises(DataError, match=r"not a shard of the same embedding .*models"):
        merge_shards([shards[0], other, shards[2]])
    other_count = embed(raw=True, data=tiny_store, shard="0/2")
    with pytest.raises(DataError, match="differs in"):
        merge_shards([shards[0], other_count])
    with pytest.raises(DataError, match="not a shard"):
        merge_shards([embed(raw=True, data=tiny_store)])


def test_a_shard_cannot_be_aggregated_or_empty(tiny_store):
    with pytest.raises(ConfigError, match="wells may span shards"):
        embed(raw=True, data=tiny_store, shard="0/2", aggregate="well")
    with pytest.raises(ConfigError, match="holds no items"):
        embed(raw=True, data=tiny_store, shard="0/100")


def test_merge_refuses_shards_of_stores_with_other_obs(tiny_store, tmp_path):
    import shutil

    other = tmp_path / "relabelled"
    shutil.copytree(tiny_store, other)  # the same header and pixels …
    obs = pd.read_csv(other / "obs.csv")
    obs.loc[obs["compound"] == "cmp00", "moa"] = "MoA 1"  # … but a compound re-annotated
    obs.to_csv(other / "obs.csv", index=False)
    first = write_h5ad(embed(raw=True, data=tiny_store, shard="0/2"), tmp_path / "a.h5ad")
    second = write_h5ad(embed(raw=True, data=other, shard="1/2"), tmp_path / "b.h5ad")
    with pytest.raises(DataError) as exc:
        merge_files([first, second])
    message = str(exc.value)
    assert message.startswith(f"{second}: not a shard of the same embedding as {first}")
    assert "store_obs_sha256 (the store's obs table (obs.csv" in message
    # shards that record no obs hash are still compared by their obs columns and categories
    parts = [embed(raw=True, data=tiny_store, shard="0/2"),
             embed(raw=True, data=tiny_store, shard="1/2")]
    for p in parts:
        del p.uns["bioaug"]["store_obs_sha256"]
    parts[1].obs["moa"] = parts[1].obs["moa"].cat.add_categories(["MoA 9"])
    with pytest.raises(DataError, match=r"input 2: .*differs in the values of obs column 'moa'"):
        merge_shards(parts)
    assert merge_shards([embed(raw=True, data=tiny_store, shard=f"{i}/2")
                         for i in range(2)]).n_obs == 48
