from __future__ import annotations

import pytest
import torch
from torch import nn

from bioaug.errors import DataError
from bioaug.train.knn import KnnMonitor, knn_accuracy, knn_predict
from bioaug.train.loop import train
from tests.train.helpers import make_store, tiny_config


def test_weighted_vote_by_hand():
    # query at angle 0; neighbours: class 0 at cos 0.9 and 0.0, class 1 at cos 0.95
    train_x = torch.tensor([[0.9, 0.435889894], [0.0, 1.0], [0.95, -0.312249900]])
    labels = torch.tensor([0, 0, 1])
    q = torch.tensor([[1.0, 0.0]])
    # k=2: votes exp(0.95/τ) for 1 vs exp(0.9/τ) for 0 → class 1
    assert knn_predict(train_x, labels, q, k=2, temperature=0.1).tolist() == [1]
    # k=3 with a large τ: weights ≈ equal, class 0 has two votes
    assert knn_predict(train_x, labels, q, k=3, temperature=100.0).tolist() == [0]


def test_separable_clusters_are_perfect_and_leave_one_out_excludes_self():
    torch.manual_seed(0)
    a = torch.randn(20, 8) * 0.05 + torch.eye(8)[0]
    b = torch.randn(20, 8) * 0.05 + torch.eye(8)[1]
    feats, labels = torch.cat([a, b]), torch.tensor([0] * 20 + [1] * 20)
    assert knn_accuracy(feats, labels, k=5) == 1.0
    assert knn_accuracy(feats[::2], labels[::2], feats[1::2], labels[1::2], k=5) == 1.0
    # one item per class: leave-one-out must use the other class only
    assert knn_accuracy(torch.eye(2), torch.tensor([0, 1]), k=1) == 0.0


def test_monitor_checks_labels_and_channels(tiny_store, tmp_path):
    with pytest.raises(DataError, match="channels"):
        KnnMonitor(tiny_store, channels=["gray"], k=5, max_items=50, seed=0)
    mon = KnnMonitor(tiny_store, channels=["DAPI", "Actin"], k=5, max_items=50, seed=0)
    assert len(mon.train_idx) == 50 and mon.test_idx is None

    class Mean(nn.Module):  # features = per-channel mean and max: a fixed, sane encoder
        def forward(self, x):
            return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)

    acc = mon(Mean(), torch.device("cpu"))
    assert 0.0 <= acc <= 1.0


def test_training_with_knn_monitor_writes_knn_csv(tiny_store, tiny_protocol, tmp_path):
    other = make_store(tmp_path / "labelled", n=40, seed=3)
    run = train(tiny_config(tiny_store, tiny_protocol, tmp_path / "run", epochs=2,
                            knn_data=other, knn_k=5))
    lines = (run / "knn.csv").read_text().splitlines()
    assert lines[0] == "step,epoch,knn_top1" and len(lines) == 3
    assert [ln.split(",")[:2] for ln in lines[1:]] == [["4", "1"], ["8", "2"]]
    assert all(0.0 <= float(ln.split(",")[2]) <= 1.0 for ln in lines[1:])


def test_unlabelled_knn_store_fails_before_training(tiny_store, tiny_protocol, tmp_path):
    import numpy as np
    import pandas as pd

    from bioaug.data.store import write_store

    unlabelled = write_store(tmp_path / "nolabels", np.zeros((4, 2, 32, 32), np.uint16),
                             pd.DataFrame({"x": range(4)}), channels=["DAPI", "Actin"]).path
    cfg = tiny_config(tiny_store, tiny_protocol, tmp_path / "run", knn_data=unlabelled)
    with pytest.raises(DataError, match="no label column"):
        train(cfg)
    assert not (tmp_path / "run").exists()
