"""Regenerate the protocol reference section of README.md (and the ops overview of
docs/protocols.md) from the op registry, and the default embedding layers of
docs/evaluation.md from the backbone registry.

Run ``python tools/update_readme.py`` after adding or changing an op; the test suite checks
that both are up to date (tests/test_readme.py, tests/augment/test_reference.py).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- ops-reference:start -->", "<!-- ops-reference:end -->"
PROTOCOL_DOC = README.parent / "docs" / "protocols.md"
GROUPS_START, GROUPS_END = "<!-- ops-groups:start -->", "<!-- ops-groups:end -->"
EVALUATION_DOC = README.parent / "docs" / "evaluation.md"
LAYERS_START, LAYERS_END = "<!-- embed-layers:start -->", "<!-- embed-layers:end -->"


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


def render_protocol_doc(doc: str) -> str:
    """``doc`` with the ops overview between its markers replaced by the current one."""
    from bioaug.augment.reference import groups_markdown

    pattern = re.compile(re.escape(GROUPS_START) + r".*?" + re.escape(GROUPS_END), re.DOTALL)
    if not pattern.search(doc):
        raise SystemExit(f"{PROTOCOL_DOC}: markers {GROUPS_START} … {GROUPS_END} not found")
    return pattern.sub(lambda _: f"{GROUPS_START}\n{groups_markdown().strip()}\n{GROUPS_END}",
                       doc)


def render_evaluation_doc(doc: str) -> str:
    """``doc`` with the table of default embedding layers replaced by the registry's."""
    from bioaug.models import embed_layers_markdown

    pattern = re.compile(re.escape(LAYERS_START) + r".*?" + re.escape(LAYERS_END), re.DOTALL)
    if not pattern.search(doc):
        raise SystemExit(f"{EVALUATION_DOC}: markers {LAYERS_START} … {LAYERS_END} not found")
    return pattern.sub(lambda _: f"{LAYERS_START}\n{embed_layers_markdown().strip()}\n"
                       f"{LAYERS_END}", doc)


def main() -> int:
    for path, update in ((README, render), (PROTOCOL_DOC, render_protocol_doc),
                         (EVALUATION_DOC, render_evaluation_doc)):
        text = path.read_text(encoding="utf-8")
        new = update(text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"updated {path}")
        else:
            print(f"{path} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
