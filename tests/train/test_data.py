from __future__ import annotations

import numpy as np
import torch

from bioaug.data.store import Store
from bioaug.train.data import (
    EpochBatchSampler,
    StoreBatches,
    epoch_permutation,
    make_loader,
    steps_per_epoch,
    to_unit_float,
)


def test_permutation_depends_on_seed_and_epoch_only():
    a = epoch_permutation(100, seed=3, epoch=1)
    assert np.array_equal(a, epoch_permutation(100, seed=3, epoch=1))
    assert sorted(a.tolist()) == list(range(100))
    assert not np.array_equal(a, epoch_permutation(100, seed=3, epoch=2))
    assert not np.array_equal(a, epoch_permutation(100, seed=4, epoch=1))


def test_sampler_drops_last_resumes_and_shards():
    full = list(EpochBatchSampler(50, 8, seed=0, epoch=0))
    assert len(full) == steps_per_epoch(50, 8) == 6
    assert all(len(b) == 8 for b in full)
    assert len({int(i) for b in full for i in b}) == 48       # no repeats within an epoch
    resumed = list(EpochBatchSampler(50, 8, seed=0, epoch=0, start_batch=4))
    assert len(resumed) == 2 and all(np.array_equal(a, b) for a, b in zip(resumed, full[4:],
                                                                          strict=True))
    shards = [list(EpochBatchSampler(50, 8, seed=0, epoch=0, rank=r, world_size=2))
              for r in range(2)]
    for step, batch in enumerate(full):
        assert np.array_equal(np.concatenate([shards[0][step], shards[1][step]]), batch)


def test_loader_yields_stored_rows_in_stored_dtype(tiny_store):
    store = Store.open(tiny_store)
    sampler = EpochBatchSampler(len(store), 16, seed=1, epoch=0)
    batches = list(make_loader(StoreBatches(tiny_store), sampler, num_workers=0))
    idx = list(sampler)
    assert len(batches) == 4
    for b, i in zip(batches, idx, strict=True):
        assert b.dtype == torch.uint16 and tuple(b.shape) == (16, 2, 32, 32)
        assert np.array_equal(b.numpy(), np.asarray(store.images[i]))
    x = to_unit_float(batches[0], store.dtype)
    assert x.dtype == torch.float32
    assert torch.allclose(x, torch.from_numpy(store.read_float(idx[0])))


def test_loader_with_workers_gives_same_batches(tiny_store):
    sampler = EpochBatchSampler(64, 16, seed=1, epoch=2)
    a = list(make_loader(StoreBatches(tiny_store), sampler, num_workers=0))
    b = list(make_loader(StoreBatches(tiny_store), sampler, num_workers=2))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
