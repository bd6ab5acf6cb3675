"""Output buffers: reused once released, never while anything still holds them."""

from __future__ import annotations

import pickle
import sys
import weakref

import torch

from bioaug.augment import buffers, build_pipeline, load_protocol
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


def test_an_alias_sharing_the_storage_holds_it_too() -> None:
    pool = OutputBuffers()
    t = _take(pool)
    address = t.data_ptr()
    alias = t.detach()
    del t
    assert _take(pool).data_ptr() != address
    del alias


# -- where reuse is switched off ----------------------------------------------------------
def test_reuse_is_on_for_this_interpreter() -> None:
    tested = sys.version_info[:2] in buffers.TESTED_PYTHONS
    assert buffers.REUSE is tested
    assert buffers.reuse_supported() == buffers.REUSE


def test_the_guard_turns_reuse_off_where_the_counts_may_differ(monkeypatch) -> None:
    assert not buffers.reuse_supported(version=(3, 99))     # an untested Python
    assert not buffers.reuse_supported(counter=False)       # torch's private function gone
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: False, raising=False)
    assert not buffers.reuse_supported()                    # a free-threaded build


def test_the_self_test_turns_reuse_off_when_counts_cannot_tell(monkeypatch) -> None:
    assert buffers._self_test()
    monkeypatch.setattr(buffers, "_counts", lambda slots, slot: (1, 1, 1))
    assert not buffers._self_test()
    assert not buffers.reuse_supported(version=tuple(sys.version_info[:2]))


def test_with_reuse_off_every_call_gets_a_new_tensor_and_views_are_the_same(
        monkeypatch) -> None:
    proto = load_protocol("bbbc021-expert")
    x = [torch.rand(40, 3, 48, 48, generator=torch.Generator().manual_seed(s)) for s in (1, 2)]

    def views(pipe) -> list[list[torch.Tensor]]:
        out = []
        for i, batch in enumerate(x):  # the second batch may reuse the first's outputs
            made = pipe(batch, torch.Generator().manual_seed(10 + i))
            out.append([v.clone() for v in made])
            del made
        return out

    pooled = views(build_pipeline(proto, 3))
    monkeypatch.setattr(buffers, "REUSE", False)
    pool = OutputBuffers()
    first = _take(pool)
    gone = weakref.ref(first)
    del first
    assert gone() is None                                     # the pool kept nothing
    assert pool._slots == {}
    fresh = views(build_pipeline(proto, 3))
    for a, b in zip(pooled, fresh, strict=True):
        for u, v in zip(a, b, strict=True):
            assert torch.equal(u, v)
