"""The protocol dock widget against the CLI: same views, same messages, valid saves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bioaug.cli import main
from bioaug.napari.grid import grid_tile, tile_size

pytest.importorskip("napari", reason="the napari plugin's tests need napari "
                                     "(pip install -e '.[napari]')")

REPO = Path(__file__).resolve().parents[2]
#: Where the screenshot for docs/napari.md is written when BIOAUG_WRITE_DOCS=1.
DOCS_SCREENSHOT = REPO / "docs" / "images" / "napari-widget.png"
PROTOCOL = """bioaug_protocol: 1
name: mine
channels: [DAPI, Tubulin, Actin]
views:
  - crop_size: 48
    steps:
      - random_resized_crop: {scale: [0.3, 1.0]}
      - rotate90: {p: 1.0}
      - stain_jitter: {brightness: 0.2, p: 0.8}   # stains vary from plate to plate
      - gaussian_blur: {sigma: [0.1, 1.5], p: 0.3}
  - same_as: 0
"""


@pytest.fixture
def field(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 3-channel 16-bit image, saved as .npy for the CLI."""
    rng = np.random.default_rng(3)
    image = (rng.random((3, 96, 112)) ** 2 * 4000).astype(np.uint16)
    path = tmp_path / "field.npy"
    np.save(path, image)
    return path, image


def cli_views(monkeypatch: pytest.MonkeyPatch, *argv: str) -> list[torch.Tensor]:
    """The views ``bioaug protocol preview`` draws, recorded from the function it calls."""
    import bioaug.augment.preview as preview

    seen: list[list[torch.Tensor]] = []
    real = preview.preview_views

    def record(*args, **kwargs):
        x, views = real(*args, **kwargs)
        seen.append(views)
        return x, views

    monkeypatch.setattr(preview, "preview_views", record)
    assert main(["protocol", "preview", *argv]) == 0
    assert len(seen) == 1
    return seen[0]


def test_views_equal_the_cli_preview_pixel_for_pixel(
        viewer, make_widget, field, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, image = field
    protocol = tmp_path / "mine.yaml"
    protocol.write_text(PROTOCOL)
    viewer.add_image(image, name="field")
    widget = make_widget(viewer)
    widget.n_spin.setValue(4)
    widget.seed_spin.setValue(5)
    assert widget.open_protocol(protocol), widget.error_text
    assert widget.axis_combo.currentText() == "0"  # 3 × H × W: channels first
    shown = widget.drawn
    assert shown is not None and shown.seed == 5 and shown.channels == ["DAPI", "Tubulin",
                                                                         "Actin"]
    expected = cli_views(monkeypatch, str(protocol), "--input", str(path), "--n", "4",
                         "--seed", "5", "--out", str(tmp_path / "p.png"))
    assert len(shown.views) == len(expected) == 2
    for mine, theirs in zip(shown.views, expected, strict=True):
        assert torch.equal(mine, theirs)
    # the layers hold exactly these views, one grid per channel
    layers = {layer.name: layer for layer in viewer.layers}
    tile = tile_size(expected)
    for c, name in enumerate(shown.channels):
        grid = np.asarray(layers[f"views: {name}"].data)
        for col, view in enumerate(expected):
            for row in range(4):
                np.testing.assert_array_equal(
                    grid_tile(grid[None], row, col, (48, 48), tile)[0],
                    view[row, c].clamp(0, 1).numpy())
    # another seed, other views; the same seed again, the same views
    widget.resample()
    assert widget.seed_spin.value() == 6 and widget.drawn.seed == 6
    assert not torch.equal(widget.drawn.views[0], expected[0])
    widget.seed_spin.setValue(5)
    widget.flush()
    assert torch.equal(widget.drawn.views[0], expected[0])


def test_a_bad_edit_shows_the_cli_error_and_keeps_the_last_good_views(
        viewer, make_widget, field, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, image = field
    protocol = tmp_path / "mine.yaml"
    protocol.write_text(PROTOCOL)
    viewer.add_image(image, name="field")
    widget = make_widget(viewer)
    assert widget.open_protocol(protocol)
    views = widget.drawn.views
    layer = next(layer for layer in viewer.layers if layer.name == "views: DAPI")
    before = np.array(layer.data)
    bad = PROTOCOL.replace("brightness: 0.2", "brightness: 1.5")
    assert not widget.set_text(bad)
    protocol.write_text(bad)
    assert main(["protocol", "validate", str(protocol)]) == 2
    cli = capsys.readouterr().err.splitlines()[0].removeprefix("bioaug: error: ")
    assert widget.error_text == cli
    assert cli.startswith(f"{protocol}:9: views[0].steps[2].stain_jitter.brightness: must be in")
    assert widget.drawn.views is views
    assert widget.status_label.text() == "the views are those of the last valid text"
    np.testing.assert_array_equal(layer.data, before)
    assert layer in viewer.layers
    # a syntax error, and images the preview refuses, leave the views alone too
    assert not widget.set_text("views: [\n")
    assert "YAML syntax error" in widget.error_text
    source = next(layer for layer in viewer.layers if layer.name == "field")
    unreadable = image.astype(np.float32)
    unreadable[0, 0, 0] = np.nan
    source.data = unreadable
    assert not widget.set_text(PROTOCOL)
    assert "1 NaN pixel value(s)" in widget.error_text and widget.drawn.views is views
    np.testing.assert_array_equal(layer.data, before)
    # fixed, the views are drawn again and the message goes
    source.data = image
    assert widget.set_text(PROTOCOL) and widget.error_text == ""
    assert widget.drawn.views is not views


def test_saving_writes_yaml_the_cli_accepts(viewer, make_widget, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    widget = make_widget(viewer)
    assert widget.set_text(PROTOCOL.replace("brightness: 0.2", "brightness: 0.35"))
    out = widget.save(tmp_path / "saved.yaml")
    assert out == tmp_path / "saved.yaml" and "brightness: 0.35" in out.read_text()
    capsys.readouterr()
    assert main(["protocol", "validate", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"OK  {out}  (mine: 2 views")
    assert widget.session.path == out  # later saves go to the same file
    assert not widget.set_text(PROTOCOL.replace("crop_size: 48", "crop_size: 0"))
    assert widget.save() is None and "crop_size: must be in" in widget.error_text
    assert "crop_size: 48" in out.read_text()  # the file keeps the last good save


def test_sliders_write_into_the_yaml(viewer, make_widget, field) -> None:
    _, image = field
    viewer.add_image(image, name="field")
    widget = make_widget(viewer)
    assert widget.set_text(PROTOCOL)
    views = widget.drawn.views
    assert set(widget.sliders) == {(0, 0, "p"), (0, 0, "scale"), (0, 1, "p"), (0, 2, "p"),
                                   (0, 2, "brightness"), (0, 3, "p"), (0, 3, "sigma")}
    widget.sliders[(0, 2, "brightness")].setValue(0.5)
    widget.sliders[(0, 3, "p")].setValue(0.75)
    widget.sliders[(0, 3, "sigma")].setValue(2.5)
    expected = (PROTOCOL.replace("brightness: 0.2", "brightness: 0.5")
                .replace("sigma: [0.1, 1.5], p: 0.3", "sigma: [0.1, 2.5], p: 0.75"))
    assert widget.text == expected  # the comment and the layout stay
    assert widget.flush()
    assert widget.session.protocol.views[0].steps[2].params.brightness == (0.5, 1.5)
    assert widget.drawn.views is not views
    # typing a value moves its slider
    assert widget.set_text(expected.replace("brightness: 0.5", "brightness: 0.1"))
    assert widget.sliders[(0, 2, "brightness")].value() == pytest.approx(0.1)


def test_several_layers_are_picked_as_channels_and_mapped(viewer, make_widget) -> None:
    rng = np.random.default_rng(0)
    planes = {name: rng.random((64, 64)).astype(np.float32)
              for name in ("GFP", "DAPI", "RFP")}
    layers = [viewer.add_image(plane, name=name) for name, plane in planes.items()]
    widget = make_widget(viewer)
    widget.pick(layers)
    assert not widget.axis_combo.isEnabled()
    assert widget.set_text(PROTOCOL.replace("crop_size: 48", "crop_size: 32"))
    # DAPI by name, then the others in place order
    assert [c.currentText() for c in widget.mapping_combos] == ["DAPI", "DAPI", "RFP"]
    widget.set_mapping([1, 0, 2])
    assert widget.error_text == ""
    none = "bioaug_protocol: 1\nviews:\n  - crop_size: 64\n    steps: []\n  - same_as: 0\n"
    assert widget.set_text(none)
    centre = widget.drawn.views[0][0]  # `steps: []` shows the central window
    np.testing.assert_array_equal(centre[1].numpy(), planes["DAPI"])
    assert widget.drawn.channels == ["GFP", "DAPI", "RFP"]


def test_the_views_are_not_offered_as_input(viewer, make_widget, field) -> None:
    _, image = field
    viewer.add_image(image, name="field")
    widget = make_widget(viewer)
    assert widget.drawn is not None
    assert [layer.name for layer in widget.image_layers()] == ["field"]
    assert widget.layer_list.count() == 1


def window_picture(viewer) -> np.ndarray:
    """The viewer's window as an RGBA picture, its canvas drawn by vispy.

    On Qt's offscreen platform a grab of the window leaves the OpenGL canvas black, while
    vispy renders the same scene into its own framebuffer; that picture is put in place.
    """
    picture = np.array(viewer.screenshot(canvas_only=False))
    canvas = viewer.window._qt_viewer.canvas
    drawn = canvas._scene_canvas.render()
    corner = canvas.native.mapTo(viewer.window._qt_window, canvas.native.rect().topLeft())
    h = min(drawn.shape[0], picture.shape[0] - corner.y())
    w = min(drawn.shape[1], picture.shape[1] - corner.x())
    picture[corner.y():corner.y() + h, corner.x():corner.x() + w] = drawn[:h, :w]
    return picture


def test_screenshot_on_a_real_field(drawing_viewer, make_widget, real_data: Path,
                                    tmp_path: Path, qtbot) -> None:
    """The picture in docs/napari.md: a real Cell Painting field (NF1 Schwann cells)."""
    import tifffile
    from PIL import Image
    from qtpy.QtCore import Qt

    folder = real_data / "nf1-cellpainting" / "Plate_2_images"
    files = {c: folder / f"D7_01_{i}_1_{c}_001.tif" for i, c in
             enumerate(("DAPI", "GFP", "RFP"), start=1)}
    viewer = drawing_viewer
    layers = [viewer.add_image(tifffile.imread(path), name=f"D7 [{c}]", colormap=colour,
                               blending="additive")
              for (c, path), colour in zip(files.items(), ("blue", "green", "magenta"),
                                           strict=True)]
    widget = make_widget(viewer)
    viewer.window.add_dock_widget(widget, area="right", name="Augmentation protocol")
    protocol = tmp_path / "nf1-fields.yaml"
    protocol.write_text(
        PROTOCOL.replace("name: mine", "name: nf1-fields")
        .replace("scale: [0.3, 1.0]", "scale: [0.02, 0.05]").replace("crop_size: 48",
                                                                      "crop_size: 96")
        .replace("[DAPI, Tubulin, Actin]", "[DAPI, GFP, RFP]"))
    widget.n_spin.setValue(4)
    assert widget.open_protocol(protocol), widget.error_text
    widget.pick(layers)
    assert widget.drawn is not None and widget.drawn.channels == ["DAPI", "GFP", "RFP"]
    viewer.window._qt_window.resize(1800, 1000)
    viewer.window._qt_window.resizeDocks([widget.parentWidget()], [560], Qt.Horizontal)
    qtbot.wait(100)
    viewer.reset_view()
    qtbot.wait(100)
    picture = window_picture(viewer)
    out = DOCS_SCREENSHOT if os.environ.get("BIOAUG_WRITE_DOCS") == "1" else tmp_path / "w.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(picture[..., :3])).quantize(
        256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
    assert picture.shape[0] >= 800 and picture.shape[1] >= 1200
    canvas = viewer.window._qt_viewer.canvas._scene_canvas.render()
    assert canvas[..., :3].std() > 10  # the field and the views are drawn
