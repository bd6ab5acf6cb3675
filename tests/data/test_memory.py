"""Memory checks: known answers for the search and the message, and both sources of the
available memory."""

from __future__ import annotations

import sys

import pytest

from bioaug.data import memory
from bioaug.data.memory import available_memory, check_memory, format_bytes, largest_fitting
from bioaug.errors import ConfigError


def test_format_bytes_known_answers() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(3 * 2**30) == "3.0 GiB"
    assert format_bytes(5 * 2**50) == "5.0 PiB"


def test_largest_fitting_known_answers() -> None:
    assert largest_fitting(lambda x: x * x, 100) == 10
    assert largest_fitting(lambda x: x * x, 99) == 9
    assert largest_fitting(lambda x: 10 * x, 5) is None
    assert largest_fitting(lambda x: x, 10**15, high=1000) == 1000


def test_check_memory_names_needed_available_and_what_fits() -> None:
    check_memory(100, "a job", available=100)  # fits exactly
    with pytest.raises(ConfigError) as e:
        check_memory(3 * 2**30, "a 9x9 field (--size)", available=2**30,
                     largest="the largest square field that fits is about 5x5")
    text = e.value.format()
    assert "a 9x9 field (--size) needs about 3.0 GiB of memory (3,221,225,472 bytes)" in text
    assert "but 1.0 GiB (1,073,741,824 bytes) is available" in text
    assert "hint: the largest square field that fits is about 5x5" in text


def test_unknown_available_memory_checks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    check_memory(10**30, "anything")


def test_available_memory_from_psutil_or_sysconf(monkeypatch: pytest.MonkeyPatch) -> None:
    psutil = pytest.importorskip("psutil")
    assert available_memory() == pytest.approx(psutil.virtual_memory().available, rel=0.2)
    monkeypatch.setitem(sys.modules, "psutil", None)  # as if psutil were not installed
    pages = {"SC_AVPHYS_PAGES": 1000, "SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(memory.os, "sysconf", pages.__getitem__)
    assert available_memory() == 4096000
