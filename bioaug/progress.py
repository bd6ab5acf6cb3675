"""Progress bars with rates for long jobs (tqdm on stderr).

Set ``BIOAUG_PROGRESS=0`` to silence them (tests and batch schedulers).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    return os.environ.get("BIOAUG_PROGRESS", "1") not in ("0", "false", "no")


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None,
             desc: str | None = None, unit: str = "it", **kwargs: Any) -> tqdm:
    """A tqdm bar showing count, rate (``unit``/s) and ETA; disabled by ``BIOAUG_PROGRESS=0``."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True,
                disable=not progress_enabled(), leave=False, **kwargs)
