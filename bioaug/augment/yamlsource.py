"""Safe YAML loading that remembers where every key came from.

The text is parsed with ``yaml.SafeLoader`` (no arbitrary Python objects) and its node tree
is walked once to map each key path, e.g. ``("views", 0, "steps", 3, "stain_jitter")``, to
the 1-based line it is written on, so errors can point at the line of the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from bioaug.errors import ProtocolError

Path_ = tuple[Any, ...]


@dataclass
class LineMap:
    """Key path → 1-based line number in the source text."""

    lines: dict[Path_, int] = field(default_factory=dict)
    duplicates: list[tuple[Path_, int]] = field(default_factory=list)

    def line(self, path: Path_) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None


def _walk(node: yaml.Node, path: Path_, out: LineMap) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            sub = (*path, key)
            if key in seen:
                out.duplicates.append((sub, key_node.start_mark.line + 1))
            seen.add(key)
            out.lines[sub] = key_node.start_mark.line + 1
            _walk(value_node, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, i)
            out.lines[sub] = item.start_mark.line + 1
            _walk(item, sub, out)


def read_text(path: str, raw: bytes) -> str:
    """Decode a protocol file, refusing binary data with a clear message."""
    if b"\x00" in raw[:8192]:
        raise ProtocolError("this is a binary file, not a YAML protocol", where=path,
                            hint="a protocol is a text file; see `bioaug protocol show none`")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"not UTF-8 text (byte {exc.start}); a protocol is a YAML text file",
                            where=path) from None


def load_yaml(text: str, source: str) -> tuple[Any, LineMap]:
    """Parse ``text`` safely; return the data and its line map. YAML errors name the line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        text_ = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ProtocolError(text_, where=where,
                            hint="check indentation, colons and brackets on that line") from None
    lines = LineMap()
    if node is not None:
        _walk(node, (), lines)
    return data, lines
