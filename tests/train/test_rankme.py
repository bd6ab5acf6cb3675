"""RankMe (Garrido et al. 2023): known answers, the monitor, and what a run writes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bioaug.data.store import Store
from bioaug.models import build_backbone
from bioaug.train import train
from bioaug.train.checkpoint import read_checkpoint
from bioaug.train.data import store_features
from bioaug.train.rankme import RankMeMonitor, rankme, rankme_warning, start_rankme
from tests.train.helpers import tiny_config


def test_equal_singular_values_give_their_count():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(50, 8, generator=g))  # orthonormal columns
    assert rankme(q) == pytest.approx(8.0, rel=1e-5)
    assert rankme(3.0 * q) == pytest.approx(8.0, rel=1e-5)        # scale does not matter
    assert rankme(q[:, :3]) == pytest.approx(3.0, rel=1e-5)
    assert rankme(torch.zeros(5, 4)) == 1.0


def test_effective_rank_by_hand():
    # singular values 3 and 1: p = (0.75, 0.25), exp(entropy)
    x = torch.diag(torch.tensor([3.0, 1.0]))
    p = torch.tensor([0.75, 0.25])
    assert rankme(x) == pytest.approx(math.exp(-(p * p.log()).sum().item()), rel=1e-5)


def test_the_warning_needs_a_low_rank_reached_by_training():
    assert rankme_warning(1.5, 100, 64) is not None                  # start unknown
    assert rankme_warning(1.5, 100, 64, start=6.0).startswith("the backbone's features")
    assert rankme_warning(1.5, 100, 64, start=1.2) is None            # it started lower
    assert rankme_warning(2.5, 100, 64, start=9.0) is None


def test_start_is_read_from_the_step_0_row(tmp_path):
    path = tmp_path / "rankme.csv"
    assert start_rankme(path) is None
    path.write_text("step,epoch,rankme\n0,0,4.5\n4,1,2.0\n")
    assert start_rankme(path) == 4.5
    path.write_text("step,epoch,rankme\n4,1,2.0\n")
    assert start_rankme(path) is None


def test_monitor_embeds_a_fixed_sample_and_keeps_the_mode(tiny_store):
    store = Store.open(tiny_store)
    torch.manual_seed(0)
    bb = build_backbone("vgg_mnist", store.n_channels, width=0.25).train()
    monitor = RankMeMonitor(store, max_items=10, seed=3)
    again = RankMeMonitor(store, max_items=10, seed=3)
    assert len(monitor.idx) == 10 and np.array_equal(monitor.idx, again.idx)
    value = monitor(bb, torch.device("cpu"))
    assert bb.training
    assert value == pytest.approx(rankme(store_features(bb, store, monitor.idx, "cpu")))
    assert monitor.last == (value, bb.out_dim)
    assert RankMeMonitor(store, max_items=10 ** 6, seed=0).idx.size == len(store)


def test_a_run_writes_rankme_before_training_and_at_each_epoch_end(tiny_store, tiny_protocol,
                                                                   tmp_path):
    run = train(tiny_config(tiny_store, tiny_protocol, tmp_path / "run", max_steps=6))
    rows = (run / "rankme.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,rankme"
    steps = [int(r.split(",")[0]) for r in rows[1:]]
    assert steps == [0, 4, 6]                       # untrained, end of epoch 1, last step
    values = [float(r.split(",")[2]) for r in rows[1:]]
    assert all(1.0 <= v <= 32.0 for v in values)
    assert isinstance(read_checkpoint(run)["health_warnings"], list)
    off = train(tiny_config(tiny_store, tiny_protocol, tmp_path / "off", rankme_items=0))
    assert not (off / "rankme.csv").exists()


def test_a_restart_before_the_first_checkpoint_writes_one_step_0_row(tiny_store, tiny_protocol,
                                                                     tmp_path):
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "run", max_steps=4)
    out = train(cfg)
    first = (out / "rankme.csv").read_text()
    (out / "checkpoint.pt").unlink()                  # as if killed before its first save
    train(cfg, resume=True)
    assert (out / "rankme.csv").read_text() == first  # one step-0 row, the same values
