"""A subpackage named like a function stays callable as that function."""

from __future__ import annotations

import inspect
import sys
import types

from bioaug.callable_package import make_callable


def test_module_calls_the_function_with_its_signature() -> None:
    def scale(x: float, *, by: float = 2.0) -> float:
        return x * by

    module = types.ModuleType("bioaug_test_scale")
    sys.modules[module.__name__] = module
    try:
        make_callable(module.__name__, scale)
        assert module(3.0) == 6.0 and module(3.0, by=0.5) == 1.5
        assert inspect.signature(module) == inspect.signature(scale)
    finally:
        del sys.modules[module.__name__]


def test_bioaug_embed_and_evaluate_stay_callable_after_import() -> None:
    import bioaug
    import bioaug.embed
    import bioaug.evaluate
    from bioaug.embed.embed import embed
    from bioaug.evaluate.report import evaluate

    def shape(f) -> list[tuple[str, object, object]]:  # names, kinds and defaults
        return [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]

    assert callable(bioaug.embed) and callable(bioaug.evaluate)
    assert shape(bioaug.embed) == shape(embed)
    assert shape(bioaug.evaluate) == shape(evaluate)
