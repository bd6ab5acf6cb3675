"""The package's one-way flow (docs: DESIGN's stage order), checked on the source.

A stage imports only from stages to its left (``data`` → ``augment`` → ``models`` +
``methods`` → ``train`` → ``embed`` → ``profile`` → ``evaluate`` → ``study``; the napari
plugin and the command line sit on top, and nothing imports ``bioaug.cli``). Imports inside
functions count too: a lazy import that runs back up the flow is still a dependency. Module
level imports (outside ``if TYPE_CHECKING:``) must form no circle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bioaug"

#: Stage order; modules outside every stage (errors, io, seeds …) rank 0, below all.
RANK = {"data": 1, "augment": 2, "models": 3, "methods": 3, "train": 4, "embed": 5,
        "profile": 6, "evaluate": 7, "study": 8, "napari": 9, "cli": 10}
#: The entry point of ``python -m bioaug`` runs the command line.
ENTRY_POINTS = {"bioaug.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def rank(module: str) -> int:
    parts = module.split(".")
    return RANK.get(parts[1], 0) if len(parts) > 1 else 0


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _module_level(tree: ast.Module) -> set[int]:
    """Ids of the nodes that run when the module is imported (top level, ``if``/``try``
    bodies, but not ``if TYPE_CHECKING:``)."""
    ids: set[int] = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        ids.add(id(node))
        if isinstance(node, (ast.If, ast.Try)) and not _is_type_checking(node):
            todo.extend(ast.iter_child_nodes(node))
    return ids


def imports(path: Path, modules: set[str]) -> list[tuple[str, bool]]:
    """The bioaug modules ``path`` imports, each with whether it runs at import time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    top = _module_level(tree)
    out: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source
                       for a in node.names]
        else:
            continue
        out += [(t, id(node) in top) for t in targets if t in modules and t != me]
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, bool]]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: imports(p, set(paths)) for m, p in paths.items()}


def test_no_import_runs_back_up_the_flow(graph):
    upward = sorted({(m, t) for m, targets in graph.items() for t, _ in targets
                     if rank(t) > rank(m) and m not in ENTRY_POINTS})
    assert upward == []


def test_module_level_imports_form_no_circle(graph):
    edges = defaultdict(set)
    for m, targets in graph.items():
        edges[m] |= {t for t, at_import in targets if at_import}
    circles = [c for c in _strongly_connected(edges, list(graph)) if len(c) > 1]
    assert circles == []


def _strongly_connected(edges: dict[str, set[str]], nodes: list[str]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                found.append(sorted(component))
    return found


def test_the_checks_can_fail():
    """A known upward import and a known circle are found."""
    assert rank("bioaug.data.store") < rank("bioaug.cli.data")
    edges = defaultdict(set, {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert [c for c in _strongly_connected(edges, ["a", "b", "c", "d"]) if len(c) > 1] == \
        [["a", "b", "c"]]
