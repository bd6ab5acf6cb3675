"""Run a function over tasks in-process or in a process pool, results in task order."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from typing import Any


class Runner:
    """``workers == 1``: plain ``map``; more: a pool (fork where available) with ``imap``."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self.pool: Any = None
        if self.workers > 1:
            methods = mp.get_all_start_methods()
            ctx = mp.get_context("fork" if "fork" in methods else "spawn")
            self.pool = ctx.Pool(self.workers)

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        if self.pool is None:
            return map(fn, tasks)
        return self.pool.imap(fn, tasks, chunksize=1)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
