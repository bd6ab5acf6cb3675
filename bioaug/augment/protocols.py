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
    """Shipped protocol name → file.

    Returns
    -------
    dict[str, Path]
        The protocols in :func:`protocols_dir`, by name (the file's stem), sorted by name.

    Examples
    --------
    >>> from bioaug.augment import shipped_protocols
    >>> shipped = shipped_protocols()
    >>> "bbbc021-expert" in shipped, shipped["none"].name
    (True, 'none.yaml')
    >>> list(shipped) == sorted(shipped)
    True
    """
    d = protocols_dir()
    if not d.is_dir():
        return {}
    return {p.stem: p for p in sorted(d.iterdir()) if p.suffix in SUFFIXES and p.is_file()}


def resolve_protocol(path_or_name: str | Path) -> Path:
    """A protocol file for a path or a shipped name; a clear error when there is neither.

    Parameters
    ----------
    path_or_name
        A protocol file, or the name of a shipped protocol (:func:`shipped_protocols`).

    Returns
    -------
    Path
        The file; an existing file wins over a shipped name.

    Examples
    --------
    >>> from bioaug.augment import resolve_protocol
    >>> resolve_protocol("moco-v2-default").name
    'moco-v2-default.yaml'
    >>> resolve_protocol("bbbc021-expret")
    Traceback (most recent call last):
    ...
    bioaug.errors.ProtocolError: unknown protocol 'bbbc021-expret' (did you mean 'bbbc021-expert'?)...
    """
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
    """Load and validate a protocol file, or a shipped protocol by name (e.g. ``none``).

    Parameters
    ----------
    path_or_name
        A protocol file (YAML), or the name of a shipped protocol.

    Returns
    -------
    Protocol
        The validated protocol; ``text`` holds the file's text and ``source`` its path.

    Examples
    --------
    >>> from bioaug.augment import load_protocol
    >>> protocol = load_protocol("bbbc021-expert")
    >>> protocol.channels, protocol.n_views, protocol.crop_sizes
    (['DAPI', 'Tubulin', 'Actin'], 2, [64, 64])
    >>> [step.op for step in protocol.views[0].steps][:3]
    ['random_resized_crop', 'rotate90', 'flip']

    A file of one's own:

    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "turns.yaml"
    >>> _ = path.write_text("{bioaug_protocol: 1, views: [{crop_size: 32, count: 3, "
    ...                     "steps: [{rotate90: {p: 1.0}}]}]}")
    >>> protocol = load_protocol(path)
    >>> protocol.name, protocol.n_views, protocol.crop_sizes
    ('turns', 3, [32, 32, 32])
    """
    path = resolve_protocol(path_or_name)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProtocolError(f"cannot read the protocol: {exc.strerror}", where=path) from None
    text = read_text(str(path), raw)
    return parse_protocol(text, source=str(path))
