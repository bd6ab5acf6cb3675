"""Whole batches straight from the memory-mapped store.

The loader does no per-sample work: each step's indices are read with one sorted
fancy-index read (:meth:`Store.read`) and handed over in the stored dtype (uint8/uint16/
float). Conversion to float in [0, 1] and every augmentation happen on the training
device, in batch (:func:`to_unit_float`, then the protocol's ``Pipeline``).

The order of an epoch is a permutation drawn from ``(seed, epoch)`` only, so a resumed
run and every process of a distributed run see exactly the same global batches; with
``world_size`` processes, rank ``r`` reads rows ``[r·b, (r+1)·b)`` of each global batch
(``b = batch_size / world_size``). The last incomplete batch is dropped so every step
has the full global batch.

What a batch is made of and which cells pair up are the run's :class:`Sampling`
(``--batches``, :mod:`bioaug.train.batches`; ``--positives``, :mod:`bioaug.train.pairs`).
With positives other than ``same_cell`` each rank's index array holds its anchors followed
by their partners (drawn for the global batch from ``(seed, epoch, batch)``), read in the
same single store read; :func:`bioaug.train.pairs.split_pair` separates them again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bioaug.data.store import DTYPE_SCALE, Store
from bioaug.train.batches import BatchPlan, build_batch_plan, parse_batches, sampling_record
from bioaug.train.pairs import ObsColumns, PairIndex, build_pair_index, pair_rng


def epoch_permutation(n_items: int, seed: int, epoch: int) -> np.ndarray:
    """The item order of ``epoch``: a permutation that depends on ``(seed, epoch)`` only."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), 0xB10A]))
    return rng.permutation(n_items)


def steps_per_epoch(n_items: int, batch_size: int) -> int:
    """Full global batches per epoch (the last incomplete batch is dropped)."""
    return n_items // batch_size


class EpochBatchSampler(Sampler[np.ndarray]):
    """Index arrays of one epoch: this rank's slice of each global batch.

    ``start_batch`` skips the batches a resumed run has already trained on. ``plan`` sets
    the batch composition (default: a permutation of the store); with ``pairs`` each array
    is this rank's anchors followed by their partners.
    """

    def __init__(self, n_items: int, batch_size: int, *, seed: int, epoch: int,
                 start_batch: int = 0, rank: int = 0, world_size: int = 1,
                 plan: BatchPlan | None = None, pairs: PairIndex | None = None) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by {world_size} processes")
        self.n_items, self.batch_size = n_items, batch_size
        self.seed, self.epoch, self.start_batch = seed, epoch, start_batch
        self.rank, self.world_size = rank, world_size
        self.local = batch_size // world_size
        self.plan, self.pairs = plan, pairs

    def __len__(self) -> int:
        return max(0, steps_per_epoch(self.n_items, self.batch_size) - self.start_batch)

    def epoch_anchors(self) -> np.ndarray:
        """``(steps, batch_size)``: the global batches of the epoch (anchors)."""
        if self.plan is not None:
            return self.plan.epoch(self.seed, self.epoch)
        steps = steps_per_epoch(self.n_items, self.batch_size)
        perm = epoch_permutation(self.n_items, self.seed, self.epoch)
        return perm[:steps * self.batch_size].reshape(steps, self.batch_size)

    def global_batch(self, b: int, anchors: np.ndarray | None = None) -> np.ndarray:
        """Global batch ``b``: its anchors ``(B,)``, or ``(2, B)`` anchors and partners."""
        a = (self.epoch_anchors() if anchors is None else anchors)[b]
        if self.pairs is None:
            return a
        return np.stack([a, self.pairs.partners(a, pair_rng(self.seed, self.epoch, b))])

    def __iter__(self) -> Iterator[np.ndarray]:
        anchors = self.epoch_anchors()
        lo, hi = self.rank * self.local, (self.rank + 1) * self.local
        for b in range(self.start_batch, len(anchors)):
            yield self.global_batch(b, anchors)[..., lo:hi].reshape(-1)


@dataclass
class Sampling:
    """How a run builds its batches: the composition, the pairing and what they read."""

    plan: BatchPlan
    pairs: PairIndex | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def paired(self) -> bool:
        return self.pairs is not None

    def sampler(self, **kwargs: Any) -> EpochBatchSampler:
        """An :class:`EpochBatchSampler` with this plan and pairing."""
        return EpochBatchSampler(self.plan.n_items, self.plan.batch_size, plan=self.plan,
                                 pairs=self.pairs, **kwargs)


def build_sampling(obs: Any, config: Any, where: Any = None) -> Sampling:
    """The :class:`Sampling` of a run config on a store's obs (columns checked up front).

    ``record`` is what the checkpoint keeps: the rule names and the obs columns read, and
    ``positive_columns`` the columns whose values a positive pair shares (a weak label
    that evaluation must not score without leaving it out).
    """
    cols = ObsColumns.from_config(config)
    spec = parse_batches(config.batches)
    plan = build_batch_plan(obs, spec, cols, int(config.batch_size), where)
    pairs = build_pair_index(obs, config.positives, cols, where)
    record = sampling_record(config)
    return Sampling(plan, pairs, record)


class StoreBatches(Dataset):
    """A map-style dataset whose items are whole batches: ``ds[index_array]``.

    The store is opened lazily in each process (a memory map is never pickled).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._store: Store | None = None
        self._n = len(Store.open(self.path))

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.path)
        return self._store

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.store.read(np.asarray(index)))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_store"] = None
        return state


def make_loader(dataset: StoreBatches, sampler: EpochBatchSampler, *, num_workers: int,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader yielding one stored-dtype tensor ``(b, C, H, W)`` per step.

    It owns its own generator, so creating it never draws from the global torch RNG
    (which would make a resumed run diverge from an uninterrupted one).
    """
    return DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=num_workers,
                      pin_memory=pin_memory, generator=torch.Generator(),
                      prefetch_factor=4 if num_workers > 0 else None,
                      persistent_workers=False)


def to_unit_float(batch: torch.Tensor, dtype: str | np.dtype) -> torch.Tensor:
    """Stored pixels → float32 in [0, 1] on the tensor's device (uint8/255, uint16/65535)."""
    scale = DTYPE_SCALE[str(np.dtype(dtype))]
    x = batch.to(torch.float32)
    return x.div_(scale) if scale != 1.0 else x


@torch.no_grad()
def store_features(backbone: torch.nn.Module, store: Store, idx: np.ndarray,
                   device: torch.device | str, batch: int = 256) -> torch.Tensor:
    """The backbone's features of the store's items ``idx``: whole stored images in [0, 1],
    eval mode (the backbone's mode is restored), float32 on the CPU, ``(len(idx), D)``."""
    was_training = backbone.training
    backbone.eval()
    try:
        out = []
        for s in range(0, len(idx), batch):
            x = torch.from_numpy(store.read(idx[s:s + batch])).to(device)
            out.append(backbone(to_unit_float(x, store.dtype)).float().cpu())
        return torch.cat(out)
    finally:
        backbone.train(was_training)
