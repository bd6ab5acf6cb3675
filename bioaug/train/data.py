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
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bioaug.data.store import DTYPE_SCALE, Store


def epoch_permutation(n_items: int, seed: int, epoch: int) -> np.ndarray:
    """The item order of ``epoch``: a permutation that depends on ``(seed, epoch)`` only."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), 0xB10A]))
    return rng.permutation(n_items)


def steps_per_epoch(n_items: int, batch_size: int) -> int:
    """Full global batches per epoch (the last incomplete batch is dropped)."""
    return n_items // batch_size


class EpochBatchSampler(Sampler[np.ndarray]):
    """Index arrays of one epoch: this rank's slice of each global batch.

    ``start_batch`` skips the batches a resumed run has already trained on.
    """

    def __init__(self, n_items: int, batch_size: int, *, seed: int, epoch: int,
                 start_batch: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by {world_size} processes")
        self.n_items, self.batch_size = n_items, batch_size
        self.seed, self.epoch, self.start_batch = seed, epoch, start_batch
        self.rank, self.world_size = rank, world_size
        self.local = batch_size // world_size

    def __len__(self) -> int:
        return max(0, steps_per_epoch(self.n_items, self.batch_size) - self.start_batch)

    def __iter__(self) -> Iterator[np.ndarray]:
        perm = epoch_permutation(self.n_items, self.seed, self.epoch)
        lo = self.rank * self.local
        for b in range(self.start_batch, steps_per_epoch(self.n_items, self.batch_size)):
            start = b * self.batch_size + lo
            yield perm[start:start + self.local]


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
