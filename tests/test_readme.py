"""README.md stays in step with the code it documents."""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

from bioaug.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def _load_updater():
    spec = importlib.util.spec_from_file_location("update_readme", REPO / "tools" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_protocol_reference_is_generated_from_the_registry() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert _load_updater().render(readme) == readme, \
        "README.md is stale: run `python tools/update_readme.py`"


def test_quickstart_has_exactly_two_commands_and_ci_calls_the_test_one() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quick = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.DOTALL)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    commands = [c for c in commands if c]
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_every_bioaug_command_in_the_readme_parses() -> None:
    """Each `bioaug …` line of the README's code blocks is accepted by the real parser."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    parser = build_parser()
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.DOTALL):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("bioaug "):
                lines.append(line)
            elif line.startswith("torchrun") and " -m bioaug " in line:
                lines.append("bioaug " + line.split(" -m bioaug ", 1)[1])
    assert len(lines) >= 15
    for line in lines:
        argv = shlex.split(line)[1:]
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse exits on unknown options
            raise AssertionError(f"README command does not parse: {line}") from exc
