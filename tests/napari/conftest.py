"""Fixtures for the napari plugin: a headless Qt, a viewer, the protocol widget.

Qt runs with the ``offscreen`` platform. napari draws layers with OpenGL, which the
offscreen platform provides only through an X display: when none is set and ``Xvfb`` is
installed, one is started for the session, before the first QApplication (every fixture
that makes one asks for ``opengl`` first). Where no OpenGL context can be made, the
``viewer`` fixture is napari's ``ViewerModel`` (the same layer API, nothing drawn) and the
tests that draw (screenshots) skip with the reason.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
#: Seconds to wait for a started Xvfb to announce its display.
XVFB_WAIT = 10


def _start_xvfb() -> subprocess.Popen[bytes] | None:
    """Start ``Xvfb`` on a free display and point ``DISPLAY`` at it (None if it fails).

    The server ends by itself when its last client (this process's Qt) disconnects, so Qt
    never outlives its display (Xlib would end the process with an I/O error)."""
    read, write = os.pipe()
    try:
        proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0",
                                 "1920x1200x24", "-nolisten", "tcp", "-terminate"],
                                pass_fds=(write,),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        os.close(write)
    with os.fdopen(read) as fh:
        import select

        ready, _, _ = select.select([fh], [], [], XVFB_WAIT)
        number = fh.readline().strip() if ready else ""
    if not number.isdigit():
        proc.terminate()
        proc.wait()
        return None
    os.environ["DISPLAY"] = f":{number}"
    return proc


@pytest.fixture(scope="session")
def x_display() -> Iterator[None]:
    """An X display for OpenGL, started before any QApplication when none is set."""
    proc = None
    if not os.environ.get("DISPLAY") and shutil.which("Xvfb"):
        proc = _start_xvfb()
    yield
    if proc is not None and not _qt_connected():
        proc.terminate()
        proc.wait()


def _qt_connected() -> bool:
    """Whether a QApplication exists (it holds the display until the process ends)."""
    try:
        from qtpy.QtWidgets import QApplication
    except ImportError:
        return False
    return QApplication.instance() is not None


def _load_triton_first() -> None:
    """Load triton (which torch loads for compiled code) before any OpenGL driver.

    Mesa's software OpenGL and triton each bring their own LLVM; loading triton after the
    driver crashes the process, loading it before does not."""
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")


def need_napari() -> None:
    """Skip, with the reason, when napari or pytest-qt is not installed."""
    for module in ("napari", "pytestqt"):
        pytest.importorskip(module, reason="the napari plugin's tests need napari and "
                                           "pytest-qt (pip install -e '.[napari]')")


@pytest.fixture(scope="session")
def opengl(request: pytest.FixtureRequest) -> bool:
    """Whether Qt can make an OpenGL context (napari needs one to draw layers)."""
    need_napari()
    _load_triton_first()
    request.getfixturevalue("x_display")
    request.getfixturevalue("qapp")
    from qtpy.QtGui import QOffscreenSurface, QOpenGLContext

    context = QOpenGLContext()
    if not context.create():
        return False
    surface = QOffscreenSurface()
    surface.create()
    ok = context.makeCurrent(surface)
    context.doneCurrent()
    return bool(ok)


@pytest.fixture
def viewer(request: pytest.FixtureRequest):
    """napari's test viewer where OpenGL works, else a ``ViewerModel``."""
    need_napari()
    if request.getfixturevalue("opengl"):
        return request.getfixturevalue("make_napari_viewer")()
    import npe2
    from napari.components import ViewerModel

    npe2.PluginManager.instance().discover()  # what a napari viewer does at start
    return ViewerModel()


@pytest.fixture
def drawing_viewer(request: pytest.FixtureRequest):
    """napari's test viewer, shown; skips where no OpenGL context can be made."""
    need_napari()
    if not request.getfixturevalue("opengl"):
        pytest.skip("no OpenGL context for napari to draw with (set DISPLAY or install Xvfb)")
    return request.getfixturevalue("make_napari_viewer")(show=True)


@pytest.fixture
def make_widget(request: pytest.FixtureRequest):
    """Build the protocol widget for a viewer (closed after the test)."""
    need_napari()
    request.getfixturevalue("opengl")
    qtbot = request.getfixturevalue("qtbot")
    from bioaug.napari.widget import ProtocolWidget

    def make(viewer) -> ProtocolWidget:
        widget = ProtocolWidget(viewer)
        qtbot.addWidget(widget)
        return widget

    return make


@pytest.fixture(scope="session")
def real_data() -> Path:
    """``../shared/data/real`` (skips when absent)."""
    if not REAL.is_dir():
        pytest.skip(f"real microscopy data not found at {REAL}")
    return REAL
