"""The plugin stays optional: bioaug never imports napari or Qt; the manifest resolves."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import bioaug.napari

GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "superqt", "vispy")


@pytest.mark.parametrize("module", ["bioaug", "bioaug.napari", "bioaug.cli", "bioaug.augment"])
def test_importing_bioaug_never_imports_napari_or_qt(module: str) -> None:
    code = (f"import sys, {module}; loaded = [m for m in {GUI!r} if m in sys.modules]; "
            "assert not loaded, loaded")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr


def test_the_manifest_is_valid_and_its_commands_resolve() -> None:
    npe2 = pytest.importorskip("npe2", reason="napari's plugin manifests need npe2 "
                                               "(pip install -e '.[napari]')")
    path = Path(bioaug.napari.__file__).with_name(bioaug.napari.MANIFEST)
    manifest = npe2.PluginManifest.from_file(path)
    assert manifest.name == "bioaug"
    contributions = manifest.contributions
    assert [w.command for w in contributions.widgets] == ["bioaug.protocol_widget"]
    assert {s.key for s in contributions.sample_data} == {"twin_field", "ifc_cells"}
    assert contributions.readers[0].accepts_directories
    for command in contributions.commands:
        module, name = command.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), name)), command.id


def test_napari_discovers_the_installed_plugin() -> None:
    npe2 = pytest.importorskip("npe2", reason="napari's plugin manifests need npe2 "
                                               "(pip install -e '.[napari]')")
    manager = npe2.PluginManager()
    manager.discover()
    manifest = manager.get_manifest("bioaug")
    assert manifest.package_metadata.name == "bioaug"
    assert {c.id for c in manifest.contributions.commands} >= {"bioaug.protocol_widget",
                                                               "bioaug.get_reader"}
