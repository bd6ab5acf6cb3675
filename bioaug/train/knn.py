"""A kNN monitor: how well frozen backbone features separate the classes of a labelled store.

Weighted k-nearest-neighbour classification on L2-normalised features (Wu et al. 2018,
"Unsupervised feature learning via non-parametric instance discrimination", CVPR): each of
the k nearest training items (cosine similarity s) votes for its class with weight
``exp(s / τ)``. If the store has a ``split`` column with ``train`` and ``test`` rows those
are used; otherwise every item is classified by the others (leave-one-out).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bioaug.data.store import Store
from bioaug.errors import DataError
from bioaug.train.data import store_features


def knn_predict(train_feats: torch.Tensor, train_labels: torch.Tensor, query: torch.Tensor,
                *, k: int = 20, temperature: float = 0.07, n_classes: int | None = None,
                exclude_self: bool = False) -> torch.Tensor:
    """Predicted class of each query row (weighted kNN vote, cosine similarity)."""
    n_classes = int(n_classes if n_classes is not None else int(train_labels.max()) + 1)
    a = F.normalize(train_feats.float(), dim=1)
    q = F.normalize(query.float(), dim=1)
    sim = q @ a.T
    if exclude_self:
        sim.fill_diagonal_(-float("inf"))
    k = min(k, a.shape[0] - (1 if exclude_self else 0))
    top, idx = sim.topk(k, dim=1)
    weights = (top / temperature).exp()
    votes = torch.zeros(q.shape[0], n_classes, dtype=weights.dtype)
    votes.scatter_add_(1, train_labels[idx], weights)
    return votes.argmax(dim=1)


def knn_accuracy(train_feats: torch.Tensor, train_labels: torch.Tensor,
                 test_feats: torch.Tensor | None = None, test_labels: torch.Tensor | None = None,
                 *, k: int = 20, temperature: float = 0.07) -> float:
    """Top-1 accuracy of the weighted kNN vote (leave-one-out when no test set is given)."""
    n_classes = int(train_labels.max()) + 1
    if test_feats is None:
        pred = knn_predict(train_feats, train_labels, train_feats, k=k, temperature=temperature,
                           n_classes=n_classes, exclude_self=True)
        return float((pred == train_labels).float().mean())
    pred = knn_predict(train_feats, train_labels, test_feats, k=k, temperature=temperature,
                       n_classes=max(n_classes, int(test_labels.max()) + 1))
    return float((pred == test_labels).float().mean())


class KnnMonitor:
    """Embeds (a subset of) a labelled store with the backbone and reports kNN accuracy."""

    def __init__(self, path, *, channels: list[str], k: int, max_items: int, seed: int) -> None:
        self.store = Store.open(path)
        label = self.store.label_column
        if not label or label not in self.store.obs.columns:
            raise DataError(f"the kNN store {path} has no label column",
                            hint="give a store made with labels (label_column in its header)")
        if self.store.channels != list(channels):
            raise DataError(f"the kNN store has channels {self.store.channels} but training uses "
                            f"{list(channels)}", where=path)
        obs = self.store.obs
        rng = np.random.default_rng(seed)
        split = obs["split"].astype(str).to_numpy() if "split" in obs.columns else None
        if split is not None and {"train", "test"} <= set(split):
            tr, te = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
            n_tr = min(len(tr), max_items * len(tr) // (len(tr) + len(te)) or 1)
            n_te = min(len(te), max(1, max_items - n_tr))
            self.train_idx = np.sort(rng.choice(tr, n_tr, replace=False))
            self.test_idx = np.sort(rng.choice(te, n_te, replace=False))
        else:
            n = min(len(obs), max_items)
            self.train_idx = np.sort(rng.choice(len(obs), n, replace=False))
            self.test_idx = None
        codes, _ = obs[label].astype(str).factorize(sort=True)
        self.labels = torch.as_tensor(codes, dtype=torch.long)
        self.k = k

    @torch.no_grad()
    def __call__(self, backbone: nn.Module, device: torch.device) -> float:
        f_tr = store_features(backbone, self.store, self.train_idx, device)
        if self.test_idx is None:
            return knn_accuracy(f_tr, self.labels[self.train_idx], k=self.k)
        f_te = store_features(backbone, self.store, self.test_idx, device)
        return knn_accuracy(f_tr, self.labels[self.train_idx], f_te,
                            self.labels[self.test_idx], k=self.k)
