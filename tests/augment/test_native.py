"""The compiled CPU kernels' plumbing: when they are used, how work is split between threads,
what their entries check, and their debug build.

Each kernel's outputs are compared with the torch code in the test of the op that uses it
(tests/augment/ops/) and, for whole protocols, in tests/augment/test_pipeline.py.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from bioaug.augment import build_pipeline, load_protocol, make_op, native
from bioaug.augment.ops import OPS

REPO = Path(__file__).resolve().parents[2]


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


# -- the kernels' entries and their debug build ----------------------------------------------
def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, timeout=600, cwd=REPO)


def test_importing_the_augmentations_does_not_import_numba() -> None:
    done = _run_python("import sys, bioaug.augment, bioaug.augment.native\n"
                       "print('numba' in sys.modules, 'bioaug.augment.kernels' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


_OUT_OF_RANGE = """
import numpy as np
from bioaug.augment import kernels
x = np.zeros((2, 1, 4, 4), dtype=np.float32)
taps = np.full((1, 3), 1 / 3, dtype=np.float32)
rows = np.array([5], dtype=np.int64)          # batch of 2: sample 5 does not exist
print("debug", kernels.DEBUG)
try:
    kernels.blur(x, taps, rows, x, 0, 1)
except IndexError as exc:
    print("IndexError", exc)
"""


def test_debug_mode_compiles_bounds_checks_so_a_bad_index_raises() -> None:
    done = _run_python(_OUT_OF_RANGE, **{native.DEBUG_ENV: "1"})
    assert done.returncode == 0, done.stderr
    assert "debug True" in done.stdout
    assert "IndexError" in done.stdout, done.stdout


def test_the_debug_mode_is_off_by_default(monkeypatch) -> None:
    monkeypatch.delenv(native.DEBUG_ENV, raising=False)
    assert not native.kernel_debug()
    for value in ("0", "off", "no", ""):
        monkeypatch.setenv(native.DEBUG_ENV, value)
        assert not native.kernel_debug()
    monkeypatch.setenv(native.DEBUG_ENV, "1")
    assert native.kernel_debug()


def test_kernel_entries_refuse_what_the_kernels_would_read_past() -> None:
    out = torch.rand(2, 1, 4, 4)
    taps = torch.full((1, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"rows: indices must lie in \[0, 2\), got 5"):
        native.blur(out, taps, torch.tensor([5]))
    with pytest.raises(ValueError, match="int64"):
        native.blur(out, taps, torch.tensor([1], dtype=torch.int32))
    with pytest.raises(ValueError, match="brightness: expected a CPU tensor of shape"):
        ones = torch.ones(1, 2)
        native.stain_jitter(out, ones, torch.ones(1, 1), torch.ones(1, 1), torch.tensor([0]))
    with pytest.raises(ValueError, match="contiguous CPU float32/float64"):
        native.add_noise(out.half(), torch.zeros(1, 1, 4, 4), torch.ones(1), torch.tensor([0]))
    before = out.clone()
    native.blur(out, taps, torch.tensor([1]))  # a valid call works, and only on sample 1
    assert torch.equal(out[0], before[0]) and not torch.equal(out[1], before[1])


def test_every_op_with_a_kernel_reaches_it_through_native_apply(monkeypatch) -> None:
    with_kernel = sorted(name for name, cls in OPS.items() if cls.has_kernel())
    assert with_kernel == ["color_jitter", "gaussian_blur", "gaussian_noise",
                           "random_resized_crop", "stain_jitter"]
    calls: list[str] = []
    for name in with_kernel:
        cls = OPS[name]

        def spy(self, *args, _inner=cls.native_apply, **kwargs):
            calls.append(self.name)
            return _inner(self, *args, **kwargs)

        monkeypatch.setattr(cls, "native_apply", spy)
    x = torch.rand(6, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    for name in with_kernel:
        op = make_op(name, p=1.0, **OPS[name].example)
        drawn = op.sample(6, (3, 12, 12), torch.Generator().manual_seed(1))
        compiled = op.apply(x, drawn)
        assert calls[-1] == name
        with monkeypatch.context() as m:  # the torch code gives the same numbers
            m.setenv(native.ENV, "0")
            reference = op.apply(x, drawn)
        torch.testing.assert_close(compiled, reference, atol=1e-5, rtol=0)
