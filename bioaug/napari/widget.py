"""The protocol dock widget: edit a protocol and see its views of an image layer.

A thin view over the Python API: the text is validated by
:func:`bioaug.augment.parse_protocol` (messages as ``bioaug protocol validate`` prints
them), the images are picked by :mod:`bioaug.napari.inputs`, and the views are made by the
functions ``bioaug protocol preview`` calls
(:func:`~bioaug.augment.preview.preview_batch`, :func:`~bioaug.augment.preview.preview_views`),
so a seed shows here exactly what the preview picture shows. A bad edit shows the error and
leaves the last good views in place; sliders write ``p`` and each step's main amplitude
into the text (:mod:`bioaug.napari.controls`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QFontDatabase, QTextCursor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider

from bioaug.augment import shipped_protocols
from bioaug.augment.preview import preview_batch, preview_views
from bioaug.errors import BioaugError
from bioaug.napari.controls import Control
from bioaug.napari.grid import view_grid
from bioaug.napari.inputs import (
    Source,
    default_mapping,
    guess_channel_axis,
    preview_input,
    source_channels,
)
from bioaug.napari.layers import VIEWS_KEY, colormap
from bioaug.napari.session import ProtocolSession, is_shipped

if TYPE_CHECKING:
    import napari
    import torch

#: Milliseconds of quiet after an edit or a slider move before the views are redrawn.
DEBOUNCE_MS = 300
#: Seeds the seed box offers (the preview accepts larger ones too).
MAX_SEED = 2**31 - 1
#: Samples (rows of views) the widget draws at most, as ``bioaug protocol preview --n``.
MAX_N = 64
#: Space between the source image and the views, in the source's pixels.
MARGIN = 16
NO_AXIS = "none"


@dataclass
class Drawn:
    """The last good views: the images augmented, the views, their channel names, seed."""

    images: torch.Tensor
    views: list[torch.Tensor]
    channels: list[str]
    seed: int
    notes: list[str]


def _monospace() -> Any:
    return QFontDatabase.systemFont(QFontDatabase.FixedFont)


def _slider(control: Control) -> QWidget:
    """A labelled slider over the control's bounds (whole numbers for an integer)."""
    if control.integer:
        slider = QLabeledSlider(Qt.Horizontal)
        slider.setRange(int(control.low), int(control.high))
        return slider
    slider = QLabeledDoubleSlider(Qt.Horizontal)
    slider.setRange(control.low, control.high)
    slider.setDecimals(3)
    return slider


class ProtocolWidget(QWidget):
    """Edit a protocol and see its views of the picked image layer(s)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = ProtocolSession()
        self.drawn: Drawn | None = None
        self.view_layers: list[Any] = []
        self.controls: list[Control] = []
        self.sliders: dict[tuple[int, int, str], QWidget] = {}
        self._quiet = False  # set while the widget itself changes its inputs
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh)
        layout = QVBoxLayout(self)
        for box in (self._protocol_box(), self._image_box(), self._views_box(),
                    self._controls_box()):
            layout.addWidget(box)
        names = list(shipped_protocols())
        if names:
            self.open_protocol(names[0])
        self.viewer.layers.events.inserted.connect(self._layers_changed)
        self.viewer.layers.events.removed.connect(self._layers_changed)
        self._layers_changed()

    @contextlib.contextmanager
    def _quietly(self) -> Iterator[None]:
        """Change the widget's own inputs without scheduling a redraw."""
        before, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = before

    # -- layout -------------------------------------------------------------------------
    def _protocol_box(self) -> QGroupBox:
        box = QGroupBox("Protocol")
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        self.protocol_combo = QComboBox()
        for name in shipped_protocols():
            self.protocol_combo.addItem(name, name)
        self.protocol_combo.activated.connect(
            lambda _: self.open_protocol(self.protocol_combo.currentData()))
        row.addWidget(self.protocol_combo, 1)
        for text, slot in (("Open…", self._open_dialog), ("Save", self._save_clicked),
                           ("Save as…", self._save_as_dialog)):
            button = QPushButton(text)
            button.clicked.connect(slot)
            row.addWidget(button)
        layout.addLayout(row)
        self.editor = QPlainTextEdit()
        self.editor.setFont(_monospace())
        self.editor.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.editor.textChanged.connect(self._text_edited)
        layout.addWidget(self.editor, 1)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error_label.setStyleSheet("color: #ff6b6b;")
        self.error_label.setTextFormat(Qt.PlainText)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.PlainText)
        layout.addWidget(self.error_label)
        layout.addWidget(self.status_label)
        return box

    def _image_box(self) -> QGroupBox:
        box = QGroupBox("Image")
        layout = QFormLayout(box)
        self.layer_list = QListWidget()
        self.layer_list.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.layer_list.setMaximumHeight(90)
        self.layer_list.itemSelectionChanged.connect(self._source_changed)
        layout.addRow("layers", self.layer_list)
        self.axis_combo = QComboBox()
        self.axis_combo.activated.connect(lambda _: self._axis_changed())
        layout.addRow("channel axis", self.axis_combo)
        self.mapping_box = QWidget()
        self.mapping_layout = QFormLayout(self.mapping_box)
        self.mapping_layout.setContentsMargins(0, 0, 0, 0)
        layout.addRow(self.mapping_box)
        self.mapping_combos: list[QComboBox] = []
        return box

    def _views_box(self) -> QGroupBox:
        box = QGroupBox("Views")
        layout = QHBoxLayout(box)
        self.n_spin = QSpinBox()
        self.n_spin.setRange(1, MAX_N)
        self.n_spin.setValue(8)
        self.n_spin.setPrefix("n ")
        self.n_spin.valueChanged.connect(lambda _: self._schedule())
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, MAX_SEED)
        self.seed_spin.setPrefix("seed ")
        self.seed_spin.valueChanged.connect(lambda _: self._schedule())
        resample = QPushButton("Resample")
        resample.clicked.connect(self.resample)
        for w in (self.n_spin, self.seed_spin, resample):
            layout.addWidget(w)
        return box

    def _controls_box(self) -> QGroupBox:
        box = QGroupBox("Steps")
        layout = QVBoxLayout(box)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        self.controls_panel = QWidget()
        self.controls_grid = QGridLayout(self.controls_panel)
        scroll.setWidget(self.controls_panel)
        layout.addWidget(scroll)
        return box

    # -- protocol text --------------------------------------------------------------------
    def open_protocol(self, name_or_path: str | Path) -> bool:
        """Show a shipped protocol (by name) or a YAML file; returns whether it is valid."""
        try:
            self.session.open(name_or_path)
        except BioaugError as exc:
            self._show_error(exc.format())
            return False
        self._select_protocol_item(name_or_path)
        self._replace_text(self.session.text)
        return self.refresh()

    def _select_protocol_item(self, name_or_path: str | Path) -> None:
        """Show the protocol in the list: a shipped name, or a file by its name (the item
        keeps the full path)."""
        key = str(name_or_path)
        if self.protocol_combo.findData(key) < 0:
            self.protocol_combo.addItem(Path(key).name, key)
            self.protocol_combo.setItemData(self.protocol_combo.count() - 1, key,
                                            Qt.ToolTipRole)
        self.protocol_combo.setCurrentIndex(self.protocol_combo.findData(key))

    @property
    def text(self) -> str:
        return self.editor.toPlainText()

    def set_text(self, text: str) -> bool:
        """Replace the text (as if typed) and redraw now; returns whether it is valid."""
        self._replace_text(text)
        return self.refresh()

    def _replace_text(self, text: str) -> None:
        """Put ``text`` in the editor as one undoable edit, without starting the timer."""
        with self._quietly():
            cursor = self.editor.textCursor()
            cursor.beginEditBlock()
            cursor.select(QTextCursor.Document)
            cursor.insertText(text)
            cursor.endEditBlock()

    def _text_edited(self) -> None:
        if not self._quiet:
            self._schedule()

    @property
    def error_text(self) -> str:
        return self.error_label.text()

    def _show_error(self, message: str | None) -> None:
        """Show ``message`` (None: clear it); the views stay those of the last valid text."""
        self.error_label.setText(message or "")
        self.error_label.setVisible(bool(message))
        if message:
            self.status_label.setText("the views are those of the last valid text"
                                      if self.drawn is not None else "")

    # -- drawing --------------------------------------------------------------------------
    def _schedule(self) -> None:
        if not self._quiet:
            self._timer.start()

    def flush(self) -> bool:
        """Redraw now if a redraw is pending; returns whether the text is valid."""
        if self._timer.isActive():
            self._timer.stop()
            return self.refresh()
        return self.session.valid

    def refresh(self) -> bool:
        """Validate the text and redraw the views; on an error keep the last good views."""
        self._timer.stop()
        if not self.session.set_text(self.text):
            self._show_error(self.session.error)
            return False
        self._sync_controls()
        self._sync_mapping()
        try:
            drawn = self._draw()
        except BioaugError as exc:
            self._show_error(exc.format())
            return False
        self._show_error(None)
        if drawn is not None:
            self.drawn = drawn
            self._show_views(drawn)
        self._show_status()
        return True

    def _draw(self) -> Drawn | None:
        """The views of the picked images with the current protocol and seed (None when
        no image is picked)."""
        source = self.source()
        protocol = self.session.protocol
        if source is None or protocol is None:
            return None
        n = self.n_spin.value()
        names = list(protocol.channels) if protocol.channels else None
        mapping = [c.currentIndex() for c in self.mapping_combos] if names else None
        data = preview_input(source, n, mapping, names, label=", ".join(source.names))
        batch, notes = preview_batch(protocol, data, n)
        seed = self.seed_spin.value()
        images, views = preview_views(protocol, batch.images, seed)
        channels = list(protocol.channels) if protocol.channels and \
            len(protocol.channels) == images.shape[1] else batch.channels
        return Drawn(images, views, channels, seed, notes)

    def _show_status(self) -> None:
        lines = [self.session.summary()]
        if self.drawn is not None:
            lines.append(f"seed {self.drawn.seed}: {len(self.drawn.views)} views × "
                         f"{self.drawn.images.shape[0]} images")
            lines += [f"note: {note}" for note in self.drawn.notes]
        elif self.source() is None:
            lines.append("pick an image layer to see the views")
        self.status_label.setText("\n".join(lines))

    def resample(self) -> None:
        """Draw new views: the next seed."""
        self.seed_spin.setValue((self.seed_spin.value() + 1) % (MAX_SEED + 1))
        self.refresh()

    def _show_views(self, drawn: Drawn) -> None:
        """Put the views in the viewer as one grid layer per channel (reused when the
        channels are the same)."""
        grid = view_grid(drawn.views)
        names = [f"views: {c}" for c in drawn.channels]
        alive = [layer for layer in self.view_layers if layer in self.viewer.layers]
        placement = self._placement(grid.shape[-2:])
        if [layer.name for layer in alive] == names:
            for layer, plane in zip(alive, grid, strict=True):
                layer.data = plane
                layer.metadata[VIEWS_KEY] = {"seed": drawn.seed}
                layer.translate, layer.scale = placement
            return
        for layer in alive:
            self.viewer.layers.remove(layer)
        self.view_layers = [
            self.viewer.add_image(plane, name=name, colormap=colormap(i), blending="additive",
                                  contrast_limits=(0.0, 1.0), metadata={VIEWS_KEY: {
                                      "seed": drawn.seed}},
                                  translate=placement[0], scale=placement[1])
            for i, (name, plane) in enumerate(zip(names, grid, strict=True))]

    def _placement(self, shape: tuple[int, int]) -> tuple[tuple[float, float],
                                                           tuple[float, float]]:
        """``(translate, scale)`` of the grid: right of the picked image, at least as tall."""
        layers = self.picked_layers()
        if not layers:
            return (0.0, 0.0), (1.0, 1.0)
        extent = np.asarray(layers[0].extent.world)
        top, right, height = float(extent[0, -2]), float(extent[1, -1]), float(
            extent[1, -2] - extent[0, -2])
        zoom = max(1.0, height / max(shape[0], 1))
        return (top, right + MARGIN), (zoom, zoom)

    # -- images ---------------------------------------------------------------------------
    def image_layers(self) -> list[Any]:
        """The viewer's image layers, apart from the views this widget draws."""
        from napari.layers import Image

        return [layer for layer in self.viewer.layers
                if isinstance(layer, Image) and VIEWS_KEY not in layer.metadata]

    def picked_layers(self) -> list[Any]:
        by_name = {layer.name: layer for layer in self.image_layers()}
        return [by_name[item.text()] for item in self.layer_list.selectedItems()
                if item.text() in by_name]

    def pick(self, layers: list[Any], channel_axis: int | str | None = "auto") -> None:
        """Pick the images: one layer (and its channel axis), or several layers as channels."""
        with self._quietly():
            wanted = {layer.name for layer in layers}
            for i in range(self.layer_list.count()):
                item = self.layer_list.item(i)
                item.setSelected(item.text() in wanted)
        self._fill_axes(channel_axis)
        self._sync_mapping(rebuild=True)
        self.refresh()

    def source(self) -> Source | None:
        """The picked images, or None when nothing is picked."""
        layers = self.picked_layers()
        if not layers:
            return None
        axis_text = self.axis_combo.currentText()
        axis = None if len(layers) > 1 or axis_text in ("", NO_AXIS) else int(axis_text)
        scales = {layer.metadata.get("bioaug_scale") for layer in layers}
        channels = layers[0].metadata.get("channels", ()) if len(layers) == 1 else ()
        return Source([layer.data for layer in layers], [layer.name for layer in layers],
                      axis, tuple(channels), scales.pop() if len(scales) == 1 else None)

    def _layers_changed(self, event: Any = None) -> None:
        picked = {item.text() for item in self.layer_list.selectedItems()}
        with self._quietly():
            self.layer_list.clear()
            for layer in self.image_layers():
                self.layer_list.addItem(layer.name)
                self.layer_list.item(self.layer_list.count() - 1).setSelected(
                    layer.name in picked)
        if not picked and self.layer_list.count():
            self._pick_default()

    def _pick_default(self) -> None:
        """Pick the first image layer, with the layers opened together with it."""
        layers = self.image_layers()
        group = layers[0].metadata.get("bioaug_group")
        together = [layer for layer in layers if group is not None
                    and layer.metadata.get("bioaug_group") == group]
        self.pick(together or layers[:1])

    def _source_changed(self) -> None:
        if self._quiet:
            return
        self._fill_axes("auto")
        self._sync_mapping(rebuild=True)
        self._schedule()

    def _fill_axes(self, channel_axis: int | str | None) -> None:
        layers = self.picked_layers()
        self.axis_combo.clear()
        self.axis_combo.addItem(NO_AXIS)
        single = len(layers) == 1 and np.ndim(layers[0].data) >= 3
        self.axis_combo.setEnabled(single)
        if not single:
            return
        shape = np.shape(layers[0].data)
        self.axis_combo.addItems([str(i) for i in range(len(shape))])
        axis = guess_channel_axis(shape, bool(getattr(layers[0], "rgb", False))) \
            if channel_axis == "auto" else channel_axis
        self.axis_combo.setCurrentText(NO_AXIS if axis is None else str(axis))

    def _axis_changed(self) -> None:
        self._sync_mapping(rebuild=True)
        self._schedule()

    def _sync_mapping(self, rebuild: bool = False) -> None:
        """One row per protocol channel: which picked channel feeds it."""
        protocol = self.session.protocol
        wanted = list(protocol.channels) if protocol is not None and protocol.channels else []
        source = self.source()
        try:
            have = source_channels(source) if source is not None else []
        except BioaugError:
            have = []
        current = ([self.mapping_layout.labelForField(c).text() for c in self.mapping_combos],
                   [c.itemText(i) for c in self.mapping_combos[:1] for i in range(c.count())])
        if not rebuild and current == (wanted, have):
            return
        while self.mapping_layout.rowCount():
            self.mapping_layout.removeRow(0)
        self.mapping_combos = []
        if not have:
            return
        for name, index in zip(wanted, default_mapping(wanted, have), strict=True):
            combo = QComboBox()
            combo.addItems(have)
            combo.setCurrentIndex(index)
            combo.activated.connect(lambda _: self._schedule())
            self.mapping_layout.addRow(name, combo)
            self.mapping_combos.append(combo)

    def set_mapping(self, mapping: list[int]) -> None:
        """Feed protocol channel ``i`` from picked channel ``mapping[i]``, and redraw."""
        for combo, index in zip(self.mapping_combos, mapping, strict=True):
            combo.setCurrentIndex(index)
        self.refresh()

    # -- sliders --------------------------------------------------------------------------
    def _sync_controls(self) -> None:
        """Sliders for the current text: rebuilt when the steps change, else moved."""
        controls = self.session.controls()
        shape = [(c.view, c.step, c.op, c.key, c.kind) for c in controls]
        if shape != [(c.view, c.step, c.op, c.key, c.kind) for c in self.controls]:
            self._build_sliders(controls)
        self.controls = controls
        for c in controls:
            slider = self.sliders[(c.view, c.step, c.key)]
            slider.blockSignals(True)
            slider.setValue(round(c.value) if c.integer else c.value)
            slider.blockSignals(False)

    def _build_sliders(self, controls: list[Control]) -> None:
        while self.controls_grid.count():
            item = self.controls_grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.sliders = {}
        for row, c in enumerate(controls):
            slider = _slider(c)
            slider.setToolTip(c.label)
            key = (c.view, c.step, c.key)
            slider.valueChanged.connect(lambda value, key=key: self.move_slider(key, value))
            step = f"v{c.view} {c.step}. {c.op}" if c.key == "p" else ""
            self.controls_grid.addWidget(QLabel(step), row, 0)
            self.controls_grid.addWidget(QLabel(c.key), row, 1)
            self.controls_grid.addWidget(slider, row, 2)
            self.sliders[key] = slider

    def move_slider(self, key: tuple[int, int, str], value: float) -> None:
        """Write a slider's value into the text; the views follow after a short pause."""
        control = next(c for c in self.controls if (c.view, c.step, c.key) == key)
        try:
            valid = self.session.set_value(control, value)
        except BioaugError as exc:
            self._show_error(exc.format())
            return
        self._replace_text(self.session.text)
        if valid:
            self.controls = self.session.controls()
        self._schedule()

    # -- files ----------------------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path | None:
        """Write the text (atomically) to ``path`` or its file; None (and the error shown)
        when the text is invalid or the file may not be written."""
        self.session.set_text(self.text)
        try:
            saved = self.session.save(path)
        except BioaugError as exc:
            self._show_error(exc.format())
            return None
        self._select_protocol_item(saved)
        self._show_error(None)
        self._show_status()
        return saved

    def _save_clicked(self) -> None:
        path = self.session.path
        if path is None or is_shipped(path):
            self._save_as_dialog()
        else:
            self.save()

    def _save_as_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save protocol", "", "YAML (*.yaml *.yml)")
        if path:
            self.save(path)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open protocol", "", "YAML (*.yaml *.yml)")
        if path:
            self.open_protocol(path)
