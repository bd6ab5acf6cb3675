"""Collection settings shared by ``tests/`` and the doctests of the ``bioaug`` package.

``pytest`` collects ``tests/`` and, with ``--doctest-modules`` (see ``pyproject.toml``), the
Examples sections of the package's docstrings. Modules that need an optional extra are left
out when the extra is not installed, and the scripts that regenerate shipped files
(``make_*.py``) are never collected: they are run by hand.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("BIOAUG_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

#: optional extra → the modules it installs and the package folder that needs them.
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "napari": (("napari", "qtpy", "superqt"), "bioaug/napari"),
}
#: Qt bindings, one of which qtpy needs.
QT_BINDINGS = ("PyQt5", "PyQt6", "PySide2", "PySide6")

#: Doctests known to fail, by item id → why (marked xfail, so a fixed one shows as XPASS).
KNOWN_FAILING_DOCTESTS: dict[str, str] = {}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _extra_installed(modules: tuple[str, ...]) -> bool:
    qt_ok = "qtpy" not in modules or any(_installed(b) for b in QT_BINDINGS)
    return qt_ok and all(_installed(m) for m in modules)


collect_ignore_glob = ["bioaug/*/make_*.py"]
collect_ignore = [folder for modules, folder in EXTRAS.values()
                  if not _extra_installed(modules)]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the doctests of :data:`KNOWN_FAILING_DOCTESTS` as expected to fail."""
    for item in items:
        reason = KNOWN_FAILING_DOCTESTS.get(item.name) if _is_doctest(item) else None
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))


def _is_doctest(item: pytest.Item) -> bool:
    return type(item).__name__ == "DoctestItem"


@pytest.fixture(autouse=True)
def _doctest_temp_dir(request: pytest.FixtureRequest) -> Iterator[None]:
    """Doctests write into ``tempfile.mkdtemp()``: point it at pytest's temporary folder,
    which pytest cleans up, instead of the system one."""
    if not _is_doctest(request.node):
        yield
        return
    folder: Path = request.getfixturevalue("tmp_path")
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved
