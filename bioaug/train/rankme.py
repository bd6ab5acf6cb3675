"""RankMe: how many directions a backbone's features use, a label-free collapse monitor.

Garrido, Balestriero, Najman, LeCun 2023, "RankMe: Assessing the downstream performance of
pretrained self-supervised representations by their rank" (ICML): the smooth effective
rank of an ``(N, D)`` matrix of embeddings,

    RankMe(Z) = exp(−Σ_k p_k log p_k),    p_k = σ_k / ‖σ‖₁ + ε,

where σ are Z's singular values (Roy & Vetterli 2007's effective rank). It lies between 1
(every image embedded along one direction: collapse) and ``min(N, D)`` (every direction used
equally), needs no labels, and ranks the runs of one method and backbone much as their
downstream accuracy does. The paper computes it on the embeddings of 25,600 images; a
monitor during training uses a fixed sample of the training store.

What it reads on real cells (imaging-flow cells, 1,024 cells, the backbone's pooled
features; docs/training.md): healthy runs of every two-view method on VGG13 at width 0.25
(128 features) span 14–28 directions, the untrained network 12.7; DINO runs on ViT-tiny
whose teacher had gone uniform span 1.4, against 5.3 untrained. A small untrained network
starts not far above 2 (``vgg_mnist`` at widths 0.125–0.5: 2.2–5.7; its all-positive pooled
features share one large mean direction), so a run is said to have collapsed when it ends
below 2 *and* below where it started.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from bioaug.data.store import Store
from bioaug.train.data import store_features

__all__ = ["COLLAPSED_RANK", "RankMeMonitor", "rankme", "rankme_warning", "start_rankme"]

#: features that span fewer effective directions than this have collapsed
COLLAPSED_RANK = 2.0


def rankme(features: torch.Tensor, eps: float = 1e-7) -> float:
    """The RankMe of ``(N, D)`` ``features`` (Garrido et al. 2023, eq. 1), in float64.

    Parameters
    ----------
    features
        One row per image.
    eps
        The ε added to each normalised singular value (the paper's 1e-7).

    Returns
    -------
    float
        The effective rank, in ``[1, min(N, D)]`` (up to ε); 1.0 for an all-zero matrix.

    Examples
    --------
    >>> import torch
    >>> from bioaug.train.rankme import rankme
    >>> round(rankme(torch.ones(10, 4)), 3)                           # rank one
    1.0
    >>> round(rankme(torch.eye(6)), 3)                                 # six equal directions
    6.0
    >>> round(rankme(torch.diag(torch.tensor([4.0, 1.0, 0.0]))), 3)
    1.649
    """
    sv = torch.linalg.svdvals(features.detach().double().cpu())
    total = sv.sum()
    if total <= 0:
        return 1.0
    p = sv / total + eps
    return float(torch.exp(-(p * p.log()).sum()))


def rankme_warning(value: float, n_items: int, dim: int,
                   start: float | None = None) -> str | None:
    """The end-of-run warning for a RankMe of ``value``: None at or above
    :data:`COLLAPSED_RANK`, or when training did not lower it from ``start`` (the untrained
    network's, when known).

    Examples
    --------
    >>> from bioaug.train.rankme import rankme_warning
    >>> rankme_warning(14.0, 1024, 128, start=12.7) is None
    True
    >>> rankme_warning(1.7, 64, 32, start=1.5) is None   # a small network starts there
    True
    >>> print(rankme_warning(1.4, 1024, 192, start=5.3))
    the backbone's features of 1024 training images span 1.4 effective directions of 192 at the end of the run, down from 5.3 at the start (RankMe, Garrido et al. 2023): they have collapsed and will separate little; see the method's own warnings, train longer or lower the learning rate
    """
    if value >= COLLAPSED_RANK or (start is not None and value >= start):
        return None
    since = f", down from {start:.1f} at the start" if start is not None else ""
    return (f"the backbone's features of {n_items} training images span {value:.1f} "
            f"effective directions of {dim} at the end of the run{since} (RankMe, Garrido "
            "et al. 2023): they have collapsed and will separate little; see the method's "
            "own warnings, train longer or lower the learning rate")


def start_rankme(path: Path) -> float | None:
    """The RankMe a ``rankme.csv`` recorded before the first step (its ``step`` 0 row)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 2 or lines[0] != "step,epoch,rankme":
        return None
    step, _, value = lines[1].split(",")
    return float(value) if int(step) == 0 else None


class RankMeMonitor:
    """RankMe of the backbone's features of a fixed, seeded sample of the training store."""

    def __init__(self, store: Store, *, max_items: int, seed: int) -> None:
        self.store = store
        n = min(len(store), max_items)
        self.idx = np.sort(np.random.default_rng(seed).choice(len(store), n, replace=False))
        #: (RankMe, feature dimension) of the last call; None before the first
        self.last: tuple[float, int] | None = None
        #: the untrained network's RankMe (None: not known, e.g. a resumed older run)
        self.start: float | None = None

    @torch.no_grad()
    def __call__(self, backbone: nn.Module, device: torch.device) -> float:
        """RankMe of the backbone's features (eval mode; its mode is restored)."""
        features = store_features(backbone, self.store, self.idx, device)
        value = rankme(features)
        self.last = (value, int(features.shape[1]))
        return value

    def health_warnings(self) -> list[str]:
        """The collapse warning of the last RankMe, if any."""
        if self.last is None:
            return []
        warning = rankme_warning(self.last[0], len(self.idx), self.last[1], self.start)
        return [warning] if warning else []
