"""CSV tables as the data stage reads them: the checks made before pandas parses one.

Every table a user gives (BBBC021's image and MoA tables, a LoadData CSV, a locations
table, the obs table and the per-cell file table of pre-cut crops) is read through
:func:`read_text`, then checked by :func:`check_header`, so that these mistakes are one
clear line instead of a parser error or a silently wrong table:

- an empty file (nothing but blank lines): "the obs table is empty";
- a file separated by semicolons or tabs (as spreadsheets export in many locales): its
  header reads as one column holding the separator: "semicolon-separated; use commas";
- a column named twice: pandas would rename the second ``FileName_DNA.1`` and read it as
  another column.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from pathlib import Path

from bioaug.errors import DataError

#: Separators recognised in a one-column header → their name in messages.
SEPARATORS: dict[str, str] = {";": "semicolon", "\t": "tab"}


def read_text(path: str | os.PathLike, kind: str, *, strict: bool = False) -> str:
    """The text of a CSV file (UTF-8, optional BOM, any line endings), never empty.

    With ``strict`` a byte that is not UTF-8 is an error; otherwise it is replaced.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the {kind} table: {exc.strerror or exc}", where=p) from exc
    try:
        text = raw.decode("utf-8-sig", errors="strict" if strict else "replace")
    except UnicodeDecodeError as exc:
        raise DataError(f"the {kind} table is not UTF-8 text (byte {exc.start})", where=p,
                        hint="save it as UTF-8 CSV") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DataError(f"the {kind} table is empty (no header line, no rows)", where=p,
                        hint="a CSV table starts with a header line naming its columns")
    return text


def header_names(text: str) -> list[str]:
    """The column names of a CSV text's first non-blank line, stripped of spaces and
    quotes (as the tables' readers name their columns)."""
    first = next(line for line in text.split("\n") if line.strip())
    return [name.strip().strip('"')
            for name in next(csv.reader(io.StringIO(first), skipinitialspace=True))]


def check_header(text: str, path: str | os.PathLike, kind: str) -> list[str]:
    """The header's column names; a :class:`DataError` for another separator than commas
    or a column named twice (both named with their positions, from 1)."""
    names = header_names(text)
    if len(names) == 1:
        for sep, what in SEPARATORS.items():
            if sep in names[0]:
                raise DataError(f"the {kind} table is {what}-separated; use commas (its "
                                f"header reads as one column: {names[0][:60]!r})", where=path,
                                hint="export it as comma-separated CSV")
    twice = [name for name, n in Counter(names).items() if n > 1]
    if twice:
        name = twice[0]
        at = [str(i + 1) for i, n in enumerate(names) if n == name]
        more = f" (and {len(twice) - 1} more column name(s))" if len(twice) > 1 else ""
        raise DataError(f"the {kind} table names column {name} twice (columns "
                        f"{' and '.join(at)}){more}", where=path,
                        hint="each column must be named once: remove or rename the copy")
    return names


__all__ = ["SEPARATORS", "check_header", "header_names", "read_text"]
