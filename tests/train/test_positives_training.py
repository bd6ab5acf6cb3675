"""``--positives`` / ``--batches`` through the real loop, the CLI and 2 Gloo processes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from bioaug.cli import main
from bioaug.data.store import Store
from bioaug.train import pairs
from bioaug.train.checkpoint import read_checkpoint
from bioaug.train.config import TrainConfig, load_config
from bioaug.train.loop import train
from tests.train.helpers import tiny_cli_args, tiny_config, write_protocol


@pytest.fixture(scope="module")
def twin_store(tmp_path_factory) -> Path:
    """A tiny BBBC021 twin: 3 plates × 8 wells, ~110 cells of 40 px (a couple of seconds)."""
    from bioaug.data.prepare import prepare_bbbc021
    from bioaug.data.synth import synth_bbbc021

    root = tmp_path_factory.mktemp("pairs-twin")
    synth_bbbc021(root / "twin", plates=3, sites=1, size=(160, 200), cells_per_field=10,
                  wells_per_plate=8, seed=0)
    prepare_bbbc021(root / "twin", root / "store", crop_size=40, moa_only=True)
    return root / "store"


@pytest.fixture(scope="module")
def twin_protocol(twin_store, tmp_path_factory) -> Path:
    return write_protocol(tmp_path_factory.mktemp("pairs-proto") / "tiny.yaml",
                          channels=Store.open(twin_store).channels)


def test_same_treatment_trains_end_to_end(twin_store, twin_protocol, tmp_path, monkeypatch):
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    call = pairs.PairedViews.__call__

    def spy(self, x, partner, params):
        assert partner is not None and partner.shape == x.shape
        seen.append((x.clone(), partner.clone()))
        return call(self, x, partner, params)

    monkeypatch.setattr(pairs.PairedViews, "__call__", spy)
    cfg = tiny_config(twin_store, twin_protocol, tmp_path / "run", epochs=1,
                      positives="same_treatment", batches="plate_balanced")
    ckpt = read_checkpoint(train(cfg))
    steps = len(Store.open(twin_store)) // 16
    assert ckpt["finished"] and ckpt["step"] == steps == len(seen)
    assert ckpt["sampling"] == {"positives": "same_treatment", "batches": "plate_balanced",
                                "obs_columns": ["compound", "concentration", "plate"],
                                "positive_columns": ["compound", "concentration"]}
    assert ckpt["config"]["positives"] == "same_treatment"
    assert np.isfinite(ckpt["last_loss"])
    # the embedding carries the record, so evaluate needs no run folder to warn of leakage
    import anndata

    from bioaug.embed import embed
    from bioaug.embed.io import write_h5ad

    write_h5ad(embed(tmp_path / "run", twin_store), tmp_path / "cells.h5ad")
    models = anndata.read_h5ad(tmp_path / "cells.h5ad").uns["bioaug"]["models"]
    assert dict(next(iter(models.values()))["sampling"])["positives"] == "same_treatment"
    # the second view came from other cells: most partners differ from their anchors
    differ = [(~torch.isclose(x, p).flatten(1).all(1)).float().mean() for x, p in seen]
    assert float(sum(differ) / len(differ)) > 0.8


class _Stop(Exception):
    pass


def test_resume_draws_the_same_pairs(twin_store, twin_protocol, tmp_path, monkeypatch):
    """Partners are a function of (seed, epoch, batch): a run stopped mid-epoch and resumed
    ends with the weights of an uninterrupted one."""
    import bioaug.train.loop as loop

    kw = {"epochs": 2, "positives": "same_treatment_other_plate",
          "batches": "per_treatment 2", "save_every_steps": 1}
    whole = read_checkpoint(train(tiny_config(twin_store, twin_protocol, tmp_path / "a", **kw)))
    real = loop.save_checkpoint

    def stop_at_step_3(path, payload):
        real(path, payload)
        if payload["step"] == 3:
            raise _Stop

    monkeypatch.setattr(loop, "save_checkpoint", stop_at_step_3)
    cfg = tiny_config(twin_store, twin_protocol, tmp_path / "b", **kw)
    with pytest.raises(_Stop):
        train(cfg)
    monkeypatch.setattr(loop, "save_checkpoint", real)
    resumed = read_checkpoint(train(cfg, resume=True))
    assert resumed["step"] == whole["step"]
    for key, value in whole["model"].items():
        if value.is_floating_point():
            assert torch.allclose(value, resumed["model"][key], atol=1e-6), key
        else:
            assert torch.equal(value, resumed["model"][key]), key


def test_cli_options(twin_store, twin_protocol, tmp_path, capsys):
    from bioaug.cli import build_parser
    from bioaug.cli.train import options_to_overrides

    argv = tiny_cli_args(twin_store, twin_protocol, tmp_path / "run")
    args = build_parser().parse_args([*argv, "--positives", "same_treatment_other_plate",
                                      "--batches", "per_treatment", "4",
                                      "--treatment-columns", "compound", "concentration",
                                      "--plate-column", "plate", "--control", "none"])
    cfg = load_config(None, **options_to_overrides(args))
    assert (cfg.positives, cfg.batches, cfg.treatment_columns, cfg.control) == (
        "same_treatment_other_plate", "per_treatment 4", ["compound", "concentration"], None)
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--positives", "same_plate"])
    assert "same_treatment_other_plate" in capsys.readouterr().err  # choices: the registry


def test_cli_names_missing_columns(twin_store, twin_protocol, tmp_path, capsys):
    argv = tiny_cli_args(twin_store, twin_protocol, tmp_path / "run")
    code = main([*argv, "--positives", "same_treatment", "--treatment-columns", "Compound"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "'Compound'" in err and "did you mean 'compound'" in err and "moa" in err
    code = main([*argv, "--batches", "per_treatment"])
    assert code == 2 and "needs a count" in capsys.readouterr().err


def test_config_file_forms(tmp_path):
    cfg = TrainConfig(data=tmp_path, protocol="x", out=tmp_path / "o",
                      batches=["per_treatment", 2], treatment_columns="compound,concentration")
    assert cfg.batches == "per_treatment 2" and cfg.treatment_columns == ["compound",
                                                                           "concentration"]
    assert cfg.positives == "same_cell" and cfg.control == "compound=DMSO"


# -- 2 Gloo processes ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_batches(rank: int, world: int, port: int, out: str) -> None:
    """One rank: its share of every batch of an epoch, gathered on rank 0 over Gloo."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    import torch.distributed as dist

    from bioaug.train.batches import build_batch_plan
    from bioaug.train.data import EpochBatchSampler
    from bioaug.train.distributed import cleanup_distributed, init_distributed
    from bioaug.train.pairs import ObsColumns, build_pair_index
    from tests.train.test_batches import screen_obs

    info = init_distributed("cpu")
    obs = screen_obs()
    got = {}
    for batches in ("plate_balanced", "per_treatment 2"):
        plan = build_batch_plan(obs, batches, ObsColumns(), 16)
        index = build_pair_index(obs, "same_treatment_other_plate", ObsColumns())
        mine = list(EpochBatchSampler(len(obs), 16, seed=3, epoch=1, rank=info.rank,
                                      world_size=info.world_size, plan=plan, pairs=index))
        shares: list[object] = [None] * info.world_size
        dist.all_gather_object(shares, mine)
        got[batches] = shares
    if info.is_main:
        torch.save(got, Path(out) / "shares.pt")
    cleanup_distributed()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_gloo_ranks_cover_each_batch_once(tmp_path):
    from bioaug.train.batches import build_batch_plan
    from bioaug.train.data import EpochBatchSampler
    from bioaug.train.pairs import ObsColumns, build_pair_index
    from tests.train.test_batches import screen_obs

    mp.start_processes(_rank_batches, args=(2, _free_port(), str(tmp_path)), nprocs=2,
                       join=True, start_method="spawn")
    got = torch.load(tmp_path / "shares.pt", weights_only=False)
    obs = screen_obs()
    for batches, (r0, r1) in got.items():
        plan = build_batch_plan(obs, batches, ObsColumns(), 16)
        index = build_pair_index(obs, "same_treatment_other_plate", ObsColumns())
        whole = list(EpochBatchSampler(len(obs), 16, seed=3, epoch=1, plan=plan, pairs=index))
        assert len(r0) == len(r1) == len(whole) == len(obs) // 16
        for a, b, g in zip(r0, r1, whole, strict=True):
            assert len(a) == len(b) == 16  # 8 anchors + their 8 partners each
            assert not set(a[:8].tolist()) & set(b[:8].tolist())  # disjoint
            assert np.array_equal(np.concatenate([a[:8], b[:8]]), g[:16])  # complete
            assert np.array_equal(np.concatenate([a[8:], b[8:]]), g[16:])  # same partners


def test_a_run_from_before_the_options_resumes(tmp_path):
    from bioaug.train.config import SAMPLING_DEFAULTS, config_diff

    new = TrainConfig(data=tmp_path, protocol="x", out=tmp_path / "o").to_plain()
    old = {k: v for k, v in new.items() if k not in SAMPLING_DEFAULTS}
    assert config_diff(old, new) == {}
    paired = TrainConfig(data=tmp_path, protocol="x", out=tmp_path / "o",
                         positives="same_well").to_plain()
    assert config_diff(old, paired) == {"positives": ("same_cell", "same_well")}
