"""Output buffers: reused once released, never while anything still holds them."""

from __future__ import annotations

import pickle

import torch

from bioaug.augment.buffers import OutputBuffers

CPU = torch.device("cpu")


def _take(pool: OutputBuffers, shape=(2, 3)) -> torch.Tensor:
    return pool.take(0, shape, torch.float32, CPU)


def _address_after_release(pool: OutputBuffers) -> int:
    t = _take(pool)
    address = t.data_ptr()
    del t
    return address


def test_a_released_output_is_handed_out_again() -> None:
    pool = OutputBuffers()
    address = _address_after_release(pool)
    assert _take(pool).data_ptr() == address


def test_an_output_still_held_in_any_form_is_not_reused() -> None:
    pool = OutputBuffers()
    holders = {
        "the tensor": lambda t: t,
        "a view": lambda t: t[0],
        "its storage": lambda t: t.untyped_storage(),
        "a NumPy array": lambda t: t.numpy(),
    }
    for what, hold in holders.items():
        t = _take(pool)
        address = t.data_ptr()
        kept = hold(t)
        del t
        fresh = _take(pool)
        assert fresh.data_ptr() != address, what
        del kept, fresh


def test_shared_memory_outputs_are_never_reused() -> None:
    pool = OutputBuffers()
    t = _take(pool)
    t.share_memory_()  # what a DataLoader worker does when it sends a batch
    address = t.data_ptr()
    del t
    assert _take(pool).data_ptr() != address


def test_another_shape_or_slot_gets_its_own_tensor() -> None:
    pool = OutputBuffers()
    address = _address_after_release(pool)
    assert _take(pool, (3, 2)).data_ptr() != address
    assert pool.take(1, (2, 3), torch.float32, CPU).shape == (2, 3)


def test_a_pickled_pool_starts_empty() -> None:
    pool = OutputBuffers()
    kept = _take(pool)
    copy = pickle.loads(pickle.dumps(pool))
    assert copy.take(0, (2, 3), torch.float32, CPU).data_ptr() != kept.data_ptr()
