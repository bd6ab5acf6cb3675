"""The state behind the protocol editor: the text, the last valid protocol, the error.

A :class:`ProtocolSession` validates text exactly as ``bioaug protocol validate`` does (the
same parser, and the file's path as the source, so a message names the same file, line and
key path). A bad edit keeps the last valid protocol, so whatever was drawn from it stays.
Saving writes the text atomically, and only text that validates.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from bioaug.augment import Protocol, parse_protocol, protocols_dir, shipped_protocols
from bioaug.augment.yamlsource import read_text
from bioaug.errors import BioaugError, ConfigError, ProtocolError
from bioaug.io import atomic_write_text
from bioaug.napari.controls import Control, step_controls
from bioaug.napari.yamledit import set_step_param

#: The source name of text that has no file yet.
UNSAVED = "<unsaved>"


def is_shipped(path: Path) -> bool:
    """Whether ``path`` is one of the protocols shipped inside the package."""
    return path.resolve().is_relative_to(protocols_dir().resolve())


class ProtocolSession:
    """Protocol text being edited, with its file (if any) and the last valid protocol."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.text = ""
        self.protocol: Protocol | None = None
        self.error: str | None = None

    @property
    def source(self) -> str:
        """How messages name the text: its file, as ``bioaug protocol validate FILE`` does."""
        return str(self.path) if self.path is not None else UNSAVED

    def open(self, name_or_path: str | Path) -> bool:
        """Load a shipped protocol by name or a YAML file; returns whether it is valid."""
        shipped = shipped_protocols()
        path = shipped[str(name_or_path)] if str(name_or_path) in shipped else Path(name_or_path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ProtocolError(f"cannot read the protocol: {exc.strerror}", where=path) from None
        text = read_text(str(path), raw)
        self.path = path
        return self.set_text(text)

    def set_text(self, text: str) -> bool:
        """Validate ``text``; on success it becomes the protocol, else :attr:`error` says why
        and the last valid protocol stays. Returns whether the text is valid."""
        self.text = text
        try:
            protocol = parse_protocol(text, source=self.source)
        except BioaugError as exc:
            self.error = exc.format()
            return False
        self.protocol = protocol
        self.error = None
        return True

    @property
    def valid(self) -> bool:
        return self.error is None and self.protocol is not None

    def controls(self) -> list[Control]:
        """The sliders of the current text (none while it is invalid)."""
        if not self.valid or self.protocol is None:
            return []
        return step_controls(self.protocol, yaml.safe_load(self.text))

    def set_value(self, control: Control, value: float) -> bool:
        """Write a slider's value into the text (see :mod:`bioaug.napari.yamledit`)."""
        new = set_step_param(self.text, control.view, control.step, control.op, control.key,
                             control.written(value), source=self.source)
        return self.set_text(new)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the text atomically to ``path`` (default: its file); refuse invalid text and
        the shipped protocols (save a copy under another name)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ConfigError("the protocol has no file yet", hint="choose where to save it")
        if is_shipped(target):
            raise ConfigError(f"{target} is a protocol shipped with bioaug; it is not "
                              "overwritten", hint="save a copy under another name")
        checked = parse_protocol(self.text, source=str(target))  # raises the CLI's message
        atomic_write_text(target, self.text)
        self.path = target
        self.protocol = checked
        self.error = None
        return target

    def summary(self) -> str:
        """What ``bioaug protocol validate`` prints for the valid protocol, naming its file
        without the folder."""
        p = self.protocol
        if p is None:
            return ""
        name = self.path.name if self.path is not None else UNSAVED
        views = ", ".join(f"{v.crop_size}px × {len(v.steps)} steps" for v in p.views)
        return f"OK  {name}  ({p.name}: {p.n_views} views: {views})"
