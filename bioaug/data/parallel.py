"""Run a function over tasks in-process or in a process pool, results in task order."""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from bioaug.errors import ConfigError


def check_workers(workers: Any, flag: str = "workers") -> int:
    """``workers`` if it is a whole number ≥ 1, else a ConfigError naming ``flag``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"{flag} must be a whole number ≥ 1 (1 runs in this process), "
                          f"got {workers!r}")
    return workers


class Runner:
    """``workers == 1``: plain ``map``; more: a process pool (fork where available)."""

    def __init__(self, workers: int) -> None:
        self.workers = check_workers(workers)
        self.pool: Any = None
        if self.workers > 1:
            methods = mp.get_all_start_methods()
            ctx = mp.get_context("fork" if "fork" in methods else "spawn")
            self.pool = ctx.Pool(self.workers)

    def map(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Results in task order; at most ``2 × workers + 2`` tasks in flight, so finished
        results never pile up in memory when the consumer is slower than the workers."""
        if self.pool is None:
            return map(fn, tasks)
        return self._bounded(fn, tasks, 2 * self.workers + 2)

    def _bounded(self, fn: Callable[[Any], Any], tasks: Iterable[Any], window: int
                 ) -> Iterator[Any]:
        pending: deque[Any] = deque()
        for task in tasks:
            pending.append(self.pool.apply_async(fn, (task,)))
            if len(pending) >= window:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
