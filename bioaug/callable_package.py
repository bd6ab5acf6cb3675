"""Packages that can be called like the function they are named after.

``bioaug.embed`` and ``bioaug.evaluate`` are both a function that :mod:`bioaug` exports and
a subpackage. Importing the subpackage makes Python set the attribute ``bioaug.embed`` to
the package, hiding the function; :func:`make_callable` makes the package itself call the
function (with its signature), so ``bioaug.embed(...)`` works before and after the import.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, func: Callable[..., Any]) -> None:
    """Make module ``module_name`` callable as ``func``, with ``func``'s signature."""
    module = sys.modules[module_name]

    class _CallablePackage(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

    _CallablePackage.__doc__ = f"The package {module_name}, callable as {func.__name__}()."
    module.__class__ = _CallablePackage
    module.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
