"""Regenerate the protocol reference section of README.md from the op registry.

Run ``python tools/update_readme.py`` after adding or changing an op; the test suite checks
that README.md is up to date (tests/test_readme.py).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- ops-reference:start -->", "<!-- ops-reference:end -->"


def render(readme: str) -> str:
    """``readme`` with the text between the markers replaced by the current reference."""
    from bioaug.augment.reference import ops_markdown

    body = ops_markdown().strip()
    # One heading level below the README's "## Protocol reference".
    body = re.sub(r"^### ", "#### ", body, flags=re.MULTILINE)
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(readme):
        raise SystemExit(f"{README}: markers {START} … {END} not found")
    return pattern.sub(lambda _: f"{START}\n{body}\n{END}", readme)


def main() -> int:
    text = README.read_text(encoding="utf-8")
    new = render(text)
    if new != text:
        README.write_text(new, encoding="utf-8")
        print(f"updated {README}")
    else:
        print(f"{README} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
