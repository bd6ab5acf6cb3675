"""Safe YAML loading that remembers where every key came from.

The text is parsed with ``yaml.SafeLoader`` (no arbitrary Python objects) and its node tree
is walked once to map each key path, e.g. ``("views", 0, "steps", 3, "stain_jitter")``, to
the 1-based line it is written on, so errors can point at the line of the problem. A key
given twice in one mapping (which YAML loaders resolve by keeping the last, without a
word) is recorded with both lines; :func:`refuse_duplicates` turns it into an error, and
:func:`read_yaml_file` reads a whole file that way (protocols, run files, sweep files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from bioaug.errors import BioaugError, ConfigError, ProtocolError, format_path

Path_ = tuple[Any, ...]


class Duplicate(NamedTuple):
    """A key given twice in one mapping: its path, and the lines of both (1-based)."""

    path: Path_
    line: int
    first_line: int


@dataclass
class LineMap:
    """Key path → 1-based line number in the source text."""

    lines: dict[Path_, int] = field(default_factory=dict)
    duplicates: list[Duplicate] = field(default_factory=list)

    def line(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None


def _walk(node: yaml.Node, path: Path_, out: LineMap) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            sub, line = (*path, key), key_node.start_mark.line + 1
            if key in seen:
                out.duplicates.append(Duplicate(sub, line, seen[key]))
            seen.setdefault(key, line)
            out.lines[sub] = line
            _walk(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, i)
            out.lines[sub] = item.start_mark.line + 1
            _walk(item, sub, out)


def read_text(path: str, raw: bytes, what: str = "protocol",
              error: type[BioaugError] = ProtocolError,
              hint: str = "a protocol is a text file; see `bioaug protocol show none`") -> str:
    """Decode a YAML file (a ``what``), refusing binary data with a clear ``error``."""
    if b"\x00" in raw[:8192]:
        raise error(f"this is a binary file, not a YAML {what}", where=path, hint=hint)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text (byte {exc.start}); a {what} is a YAML text file",
                    where=path) from None


def load_yaml(text: str, source: str,
              error: type[BioaugError] = ProtocolError) -> tuple[Any, LineMap]:
    """Parse ``text`` safely; return the data and its line map. YAML errors name the line
    (raised as ``error``)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        text_ = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise error(text_, where=where,
                    hint="check indentation, colons and brackets on that line") from None
    lines = LineMap()
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def refuse_duplicates(lines: LineMap, source: str,
                      error: type[BioaugError] = ConfigError) -> None:
    """An ``error`` naming every key given twice and the lines of both, if any is."""
    dups = lines.duplicates
    if not dups:
        return
    named = [f"'{format_path(d.path)}' (lines {d.first_line} and {d.line})" for d in dups]
    head = f"key {named[0]} is" if len(dups) == 1 else f"keys {', '.join(named)} are"
    raise error(f"{head} given twice; YAML would keep the second without a word",
                where=f"{source}:{dups[0].line}", hint="keep one of them")


def read_yaml_file(path: str | os.PathLike, what: str,
                   error: type[BioaugError] = ConfigError) -> Any:
    """The data of the YAML file ``path`` (a ``what``: "run config", "sweep file"), read
    safely: a missing or binary file, a syntax error or a key given twice is an ``error``
    naming the file and line."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{what} {p} does not exist")
    text = read_text(str(p), p.read_bytes(), what, error, hint=f"a {what} is a YAML text file")
    data, lines = load_yaml(text, str(p), error)
    refuse_duplicates(lines, str(p), error)
    return data
