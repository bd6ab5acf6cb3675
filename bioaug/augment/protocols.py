"""Finding and loading protocols: files, or shipped protocols by name."""

from __future__ import annotations

from pathlib import Path

from bioaug.augment.schema import Protocol, parse_protocol
from bioaug.augment.yamlsource import read_text
from bioaug.errors import ProtocolError, unknown_choice

SUFFIXES = (".yaml", ".yml")


def protocols_dir() -> Path:
    """The directory of shipped protocols (``bioaug/protocols``; ``protocols/`` at the repository root links to it)."""
    return Path(__file__).resolve().parents[1] / "protocols"


def shipped_protocols() -> dict[str, Path]:
    """Shipped protocol name → file."""
    d = protocols_dir()
    if not d.is_dir():
        return {}
    return {p.stem: p for p in sorted(d.iterdir()) if p.suffix in SUFFIXES and p.is_file()}


def resolve_protocol(path_or_name: str | Path) -> Path:
    """A protocol file for a path or a shipped name; a clear error when there is neither."""
    p = Path(path_or_name)
    if p.is_file():
        return p
    if p.is_dir():
        raise ProtocolError(f"{p} is a directory, not a protocol file")
    shipped = shipped_protocols()
    name = str(path_or_name)
    if name in shipped:
        return shipped[name]
    looks_like_path = p.suffix in SUFFIXES or "/" in name or "\\" in name
    if looks_like_path:
        raise ProtocolError(f"no such protocol file: {p}",
                            hint=f"shipped protocols: {', '.join(shipped)}")
    raise ProtocolError(unknown_choice("protocol", name, shipped),
                        hint="give a path to a .yaml file or a shipped protocol's name")


def load_protocol(path_or_name: str | Path) -> Protocol:
    """Load and validate a protocol file, or a shipped protocol by name (e.g. ``none``)."""
    path = resolve_protocol(path_or_name)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProtocolError(f"cannot read the protocol: {exc.strerror}", where=path) from None
    text = read_text(str(path), raw)
    return parse_protocol(text, source=str(path))
