"""Pick the compute device: CUDA, then Apple MPS, then CPU.

A device is named ``auto``, ``cpu``, ``cuda`` (the current GPU), ``cuda:N`` (GPU ``N``,
counted from 0) or ``mps``. :func:`parse_device` checks the spelling (what a command line
can check before any work); :func:`pick_device` also checks that the machine has it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from bioaug.errors import ConfigError

#: The device names without an index; ``cuda:N`` is accepted too (see :func:`parse_device`).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
#: Every accepted form, for help texts and messages.
DEVICE_FORMS = "auto, cpu, cuda, cuda:N (N = 0, 1, … the GPU's index) or mps"
_CUDA_INDEX = re.compile(r"cuda:(\d+)")


def _mps_available() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


#: device kind → whether this machine has it; ``auto`` takes the first available, in order.
AVAILABLE: dict[str, Callable[[], bool]] = {
    "cuda": lambda: torch.cuda.is_available(),
    "mps": _mps_available,
    "cpu": lambda: True,
}


def parse_device(text: str, flag: str = "--device") -> str:
    """The device ``text`` names, lower-cased; a ConfigError for any other spelling.

    Parameters
    ----------
    text
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (any case, surrounding spaces
        ignored).
    flag
        The option or argument that gave ``text``, named in the message.

    Returns
    -------
    str
        The normalised name (``"cuda:1"``); whether the machine has it is
        :func:`pick_device`'s to check.

    Examples
    --------
    >>> from bioaug.device import parse_device
    >>> parse_device("CUDA:1"), parse_device(" mps ")
    ('cuda:1', 'mps')
    >>> parse_device("gpu")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: --device: unknown device 'gpu'; use auto, cpu, cuda, cuda:N (N = 0, 1, … the GPU's index) or mps
    """
    name = str(text).strip().lower()
    if name in DEVICE_CHOICES:
        return name
    indexed = _CUDA_INDEX.fullmatch(name)
    if indexed:
        return f"cuda:{int(indexed.group(1))}"
    raise ConfigError(f"unknown device '{text}'; use {DEVICE_FORMS}", where=flag)


#: device kind → what is missing when the machine does not have it.
_MISSING: dict[str, str] = {"cuda": "no CUDA GPU is available",
                            "mps": "Apple MPS is not available"}


def _unavailable(name: str, flag: str) -> ConfigError:
    kind = name.split(":", 1)[0]
    return ConfigError(f"{flag} {name} was asked for but {_MISSING[kind]}",
                       hint=f"use {flag} auto or {flag} cpu")


def _cuda_index(name: str, flag: str) -> torch.device:
    """``cuda:N`` after checking that GPU ``N`` exists."""
    index = int(name.split(":", 1)[1])
    count = torch.cuda.device_count()
    if index >= count:
        have = (f"has {count} CUDA GPU{'s' if count > 1 else ''} "
                f"(cuda:0{f' … cuda:{count - 1}' if count > 1 else ''})")
        raise ConfigError(f"{flag} {name} asks for GPU {index} but this machine {have}",
                          hint=f"use an index below {count}, or {flag} cuda")
    return torch.device(name)


def pick_device(preference: str = "auto", flag: str = "--device") -> torch.device:
    """The device to compute on; ``auto`` prefers CUDA, then MPS, then CPU.

    Parameters
    ----------
    preference
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (see :func:`parse_device`).
    flag
        The option that gave ``preference``, named in messages.

    Returns
    -------
    torch.device
        The device. A device this machine does not have (no CUDA, no MPS, a GPU index at or
        above the number of GPUs) is a ConfigError saying what it has.

    Examples
    --------
    >>> from bioaug.device import pick_device
    >>> pick_device("cpu")
    device(type='cpu')
    >>> pick_device("cuda:99")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: --device cuda:99 ...
    """
    name = parse_device(preference, flag)
    if name == "auto":
        return torch.device(next(kind for kind, has in AVAILABLE.items() if has()))
    kind = name.split(":", 1)[0]
    if not AVAILABLE[kind]():
        raise _unavailable(name, flag)
    return _cuda_index(name, flag) if ":" in name else torch.device(name)
