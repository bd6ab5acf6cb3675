"""The method registry: a plain dict ``name → Method class``, filled by a decorator.

A method module registers its class with ``@register_method`` (the class's ``name`` is the
key). :mod:`bioaug.methods` imports every module of the package, so a new method is one
new file (plus its test): every list of method names (the ``bioaug train`` options and
help, error messages, docs tables) is read from :data:`METHODS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from bioaug.errors import ConfigError, unknown_choice

if TYPE_CHECKING:
    from bioaug.methods.base import Method

__all__ = ["METHODS", "lookup_method", "method_names", "register_method"]

#: name → Method class, for every registered method
METHODS: dict[str, type[Method]] = {}

M = TypeVar("M", bound="type[Method]")


def register_method(cls: M) -> M:
    """Class decorator: add ``cls`` to :data:`METHODS` under ``cls.name``.

    Registering a second class under a name already taken is a ConfigError (a method
    module imported twice under one name is allowed: the class is the same object).

    Parameters
    ----------
    cls
        A :class:`~bioaug.methods.base.Method` subclass whose ``name`` is an identifier.

    Returns
    -------
    type
        ``cls``, unchanged (so it works as a decorator).

    Examples
    --------
    >>> from bioaug.methods import METHODS, Method, lookup_method, register_method
    >>> @register_method
    ... class Mirror(Method):
    ...     name = "mirror"
    >>> lookup_method("mirror") is Mirror
    True
    >>> @register_method
    ... class Other(Method):
    ...     name = "mirror"
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: method name 'mirror' is taken by bioaug.methods.registry.Mirror
    >>> del METHODS["mirror"]
    """
    name = cls.name
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"a method's name must be an identifier, got {name!r}")
    known = METHODS.get(name)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise ConfigError(f"method name '{name}' is taken by {known.__module__}."
                          f"{known.__qualname__}")
    METHODS[name] = cls
    return cls


def method_names() -> list[str]:
    """The registered method names, sorted.

    Returns
    -------
    list of str
        The keys of :data:`METHODS`: what ``bioaug train --method`` accepts.

    Examples
    --------
    >>> from bioaug.methods import method_names
    >>> names = method_names()
    >>> "moco_v2" in names, "simclr" in names, names == sorted(names)
    (True, True, True)
    """
    return sorted(METHODS)


def lookup_method(name: str) -> type[Method]:
    """The class registered as ``name``; an unknown name is a ConfigError listing the known.

    Parameters
    ----------
    name
        A registered method name (:func:`method_names`).

    Returns
    -------
    type
        The :class:`~bioaug.methods.base.Method` subclass.

    Examples
    --------
    >>> from bioaug.methods import lookup_method
    >>> cls = lookup_method("simclr")
    >>> cls.title, cls.n_views, cls.Config().temperature
    ('SimCLR', 2, 0.5)
    >>> lookup_method("simclear")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: unknown method 'simclear' (did you mean 'simclr'?); known: ...
    """
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ConfigError(unknown_choice("method", str(name), METHODS)) from None
