"""The checks every CSV table gets before it is parsed: empty files, other separators,
columns named twice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bioaug.data.tables import check_header, header_names, read_text
from bioaug.errors import DataError


def test_text_is_utf8_with_one_kind_of_line_ending(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_bytes(b"\xef\xbb\xbfa,b\r\n1,2\r3,4\n")
    assert read_text(f, "obs") == "a,b\n1,2\n3,4\n"
    f.write_bytes(b"a,b\n\xff,2\n")
    assert read_text(f, "obs") == "a,b\n\ufffd,2\n"
    with pytest.raises(DataError, match=r"the obs table is not UTF-8 text \(byte 4\)"):
        read_text(f, "obs", strict=True)


@pytest.mark.parametrize("content", ["", "\n", "  \n\n"])
def test_an_empty_table_is_named(tmp_path: Path, content: str) -> None:
    f = tmp_path / "obs.csv"
    f.write_text(content)
    with pytest.raises(DataError, match=r"the obs table is empty \(no header line, no rows\)") \
            as e:
        read_text(f, "obs")
    assert str(f) in e.value.format()


def test_header_names_follow_csv_quoting() -> None:
    assert header_names('\n "a" ,"b,c",d\n1,2,3\n') == ["a", "b,c", "d"]


@pytest.mark.parametrize(("header", "message"), [
    ("Metadata_Plate;FileName_DNA;PathName_DNA", "the LoadData table is semicolon-separated; "
                                                  "use commas"),
    ("Metadata_Plate\tFileName_DNA", "the LoadData table is tab-separated; use commas"),
    ("FileName_DNA,PathName_DNA,FileName_DNA", "names column FileName_DNA twice (columns 1 "
                                               "and 3)"),
    ("a,b,a,b", "names column a twice (columns 1 and 3) (and 1 more column name(s))"),
])
def test_other_separators_and_repeated_columns_are_refused(header: str, message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        check_header(header + "\n1\n", "ld.csv", "LoadData")


def test_a_good_header_passes() -> None:
    assert check_header("a,b;c\n1,2\n", "t.csv", "obs") == ["a", "b;c"]
    assert check_header("plate\nP1\n", "t.csv", "obs") == ["plate"]
