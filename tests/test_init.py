"""The top-level package: fast to import, its public functions defined once, in their stage."""

from __future__ import annotations

import ast
import inspect
import pydoc
import subprocess
import sys

import bioaug


def test_import_bioaug_loads_no_stage() -> None:
    code = ("import sys, bioaug; "
            "print(sorted(m for m in sys.modules if m.startswith(('bioaug.', 'torch', "
            "'pydantic', 'anndata'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_public_functions_have_one_source() -> None:
    tree = ast.parse(inspect.getsource(bioaug))
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert not defined & {"embed", "evaluate"}  # no copies of signatures or docs here
    from bioaug.embed.embed import embed
    from bioaug.evaluate.report import evaluate

    assert inspect.signature(bioaug.embed) == inspect.signature(embed)
    assert inspect.signature(bioaug.evaluate) == inspect.signature(evaluate)


def test_name_keeps_its_meaning_before_and_after_the_submodule_import() -> None:
    first = bioaug.evaluate
    import bioaug.evaluate as stage

    assert first is stage is bioaug.evaluate and callable(first)


def test_help_shows_the_public_names_only() -> None:
    assert dir(bioaug) == ["__version__", "embed", "evaluate"]
    text = pydoc.render_doc(bioaug, renderer=pydoc.plaintext)
    for leaked in ("Sequence", "Any", "os\n"):
        assert leaked not in text, leaked


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        bioaug.not_a_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:
        raise AssertionError("no AttributeError")
