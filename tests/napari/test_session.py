"""The editor's state: validation as the CLI does it, last good protocol, atomic saves."""

from __future__ import annotations

from pathlib import Path

import pytest

from bioaug.augment import shipped_protocols
from bioaug.cli import main
from bioaug.errors import ConfigError, ProtocolError
from bioaug.napari.session import UNSAVED, ProtocolSession, is_shipped

GOOD = """bioaug_protocol: 1
name: mine
views:
  - crop_size: 32
    steps:
      - stain_jitter: {brightness: 0.2, p: 0.8}  # stains vary
  - same_as: 0
"""
BAD = GOOD.replace("brightness: 0.2", "brightness: 1.5")


def cli_error(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    """What ``bioaug protocol validate PATH`` says about a bad file (without its prefix)."""
    assert main(["protocol", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    first = err.split("\n1 of 1 protocol(s) invalid")[0]
    assert first.startswith("bioaug: error: ")
    return first.removeprefix("bioaug: error: ")


def test_a_bad_edit_shows_the_cli_message_and_keeps_the_last_protocol(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD)
    session = ProtocolSession()
    assert session.open(path) and session.valid and session.error is None
    good = session.protocol
    assert not session.set_text(BAD)
    path.write_text(BAD)
    assert session.error == cli_error(capsys, path)
    assert session.error.startswith(f"{path}:6: views[0].steps[0].stain_jitter.brightness")
    assert session.protocol is good and not session.valid
    assert session.controls() == []


def test_shipped_protocols_open_by_name_and_validate_as_the_cli_names_them() -> None:
    session = ProtocolSession()
    name = next(iter(shipped_protocols()))
    assert session.open(name)
    assert session.source == str(shipped_protocols()[name]) and is_shipped(session.path)
    assert session.summary().startswith(f"OK  {session.path.name}  ({name}: ")
    with pytest.raises(ProtocolError, match="cannot read the protocol"):
        ProtocolSession().open("no-such-protocol.yaml")


def test_unsaved_text_is_named_as_such() -> None:
    session = ProtocolSession()
    assert not session.set_text(BAD)
    assert session.error.startswith(f"{UNSAVED}:6: ")


def test_save_writes_valid_text_atomically(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    session = ProtocolSession()
    session.set_text(GOOD)
    out = session.save(tmp_path / "saved.yaml")
    assert out.read_text() == GOOD and session.path == out
    assert main(["protocol", "validate", str(out)]) == 0
    assert "OK" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved.yaml"]  # no temp files


def test_save_refuses_invalid_text_and_the_shipped_protocols(tmp_path: Path) -> None:
    session = ProtocolSession()
    session.set_text(BAD)
    with pytest.raises(ProtocolError, match="brightness: must be in"):
        session.save(tmp_path / "bad.yaml")
    assert not (tmp_path / "bad.yaml").exists()
    with pytest.raises(ConfigError, match="no file yet"):
        session.save()
    session.open(next(iter(shipped_protocols())))
    before = session.path.read_text()
    with pytest.raises(ConfigError, match="shipped with bioaug"):
        session.save()
    assert session.path.read_text() == before


def test_moving_a_control_rewrites_the_text() -> None:
    session = ProtocolSession()
    session.set_text(GOOD)
    brightness = next(c for c in session.controls() if c.key == "brightness")
    assert session.set_value(brightness, 0.5)
    assert session.text == GOOD.replace("brightness: 0.2", "brightness: 0.5")
    assert session.protocol.views[0].steps[0].params.brightness == (0.5, 1.5)
