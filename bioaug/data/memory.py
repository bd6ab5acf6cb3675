"""Whether a job's arrays fit in memory, checked before they are allocated.

Writers whose memory grows with a size the user gives (a synthetic field of ``--size``
H×W, natural images upscaled to ``--size``) estimate the bytes they need and call
:func:`check_memory` first: a size that cannot fit is one clear error naming the bytes
needed, the bytes available and the largest size that fits, not an allocation failure
deep inside NumPy or OpenCV.

Available memory is what the operating system reports as available to a new process
(:func:`psutil.virtual_memory` when psutil is installed, else the free physical pages from
:func:`os.sysconf`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from bioaug.errors import ConfigError


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation; ``None`` when it cannot be told."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return int(psutil.virtual_memory().available)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(n: int) -> str:
    """``123456789`` → ``117.7 MiB`` (binary units, one decimal)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


def largest_fitting(need: Callable[[int], int], available: int, low: int = 1,
                    high: int = 1 << 40) -> int | None:
    """The largest ``x`` in ``[low, high]`` with ``need(x) ≤ available`` (``need`` grows
    with ``x``); ``None`` when not even ``low`` fits."""
    if need(low) > available:
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if need(mid) <= available:
            low = mid
        else:
            high = mid - 1
    return low


def check_memory(needed: int, what: str, *, largest: str | None = None,
                 available: int | None = None) -> None:
    """A :class:`ConfigError` when ``needed`` bytes exceed the memory available.

    ``what`` names the job and the size asked for (``"a 100000x100000 field (--size)"``);
    ``largest`` says what does fit (``"the largest square field that fits is 3344x3344"``).
    ``available`` defaults to :func:`available_memory`; nothing is checked when that is
    unknown.
    """
    free = available_memory() if available is None else available
    if free is None or needed <= free:
        return
    raise ConfigError(f"{what} needs about {format_bytes(needed)} of memory ({needed:,} "
                      f"bytes) but {format_bytes(free)} ({free:,} bytes) is available",
                      hint=largest or "choose a smaller size")


__all__ = ["available_memory", "check_memory", "format_bytes", "largest_fitting"]
