"""The compiled CPU kernels' plumbing: when they are used, how work is split between threads.

Each kernel's outputs are compared with the torch code in the test of the op that uses it
(tests/augment/ops/) and, for whole protocols, in tests/augment/test_pipeline.py.
"""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest
import torch

from bioaug.augment import build_pipeline, load_protocol, native


def test_split_gives_contiguous_ranges_of_a_useful_size() -> None:
    assert native.split(100, 2) == [(0, 50), (50, 100)]
    assert native.split(101, 3) == [(0, 34), (34, 67), (67, 101)]
    assert native.split(40, 4) == [(0, 40)]  # fewer than MIN_PER_THREAD per thread
    assert native.split(0, 2) == []


def test_parallel_covers_every_item_once_across_threads() -> None:
    seen: list[tuple[int, int, str]] = []
    lock = threading.Lock()

    def work(start: int, stop: int) -> None:
        with lock:
            seen.append((start, stop, threading.current_thread().name))

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        native.parallel(work, 80)
    finally:
        torch.set_num_threads(before)
    assert sorted((a, b) for a, b, _ in seen) == [(0, 40), (40, 80)]
    assert len({name for *_, name in seen}) == 2
    seen.clear()
    native.parallel(work, 0)
    assert seen == []


def test_kernels_are_used_only_for_cpu_floats_without_gradients(monkeypatch) -> None:
    x = torch.rand(2, 3, 4, 4)
    assert native.available(x)
    assert native.available(x.double())
    assert not native.available(x.half())
    assert not native.available(x.clone().requires_grad_())
    monkeypatch.setenv(native.ENV, "0")
    assert not native.available(x)


@pytest.mark.parametrize("name", ["bbbc021-expert", "mnist-all"])
def test_views_do_not_depend_on_the_number_of_threads(name: str) -> None:
    proto = load_protocol(name)
    c = len(proto.channels) if proto.channels else 1
    pipe = build_pipeline(proto, c)
    x = torch.rand(80, c, 40, 40, generator=torch.Generator().manual_seed(1))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = pipe(x, torch.Generator().manual_seed(5))
        torch.set_num_threads(2)
        two = pipe(x, torch.Generator().manual_seed(5))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two, strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_gets_threads_of_its_own() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        native.parallel(lambda a, b: None, 80)  # the parent's pool exists
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(1) as pool:
            assert pool.apply_async(_parallel_in_child).get(timeout=60) == [(0, 40), (40, 80)]
    finally:
        torch.set_num_threads(before)


def _parallel_in_child() -> list[tuple[int, int]]:
    torch.set_num_threads(2)
    seen: list[tuple[int, int]] = []
    native.parallel(lambda a, b: seen.append((a, b)), 80)
    return sorted(seen)
