"""bioaug: augmentation protocols, self-supervised training and phenotype evaluation.

The package is a one-way flow of stages (see the README):
``data`` → ``augment`` → ``models`` + ``methods`` → ``train`` → ``embed`` → ``evaluate``,
with ``study`` orchestrating them. The command line (``bioaug.cli``) is a thin layer on
top of the Python API exposed here.

``bioaug.embed(...)`` and ``bioaug.evaluate(...)`` call the functions of those stages
(:func:`bioaug.embed.embed`, :func:`bioaug.evaluate.evaluate`; their signatures and
documentation live there only). The stages are imported on first use, so ``import bioaug``
stays fast. Each name is its stage's package, callable as its function, whether it is
reached as ``bioaug.embed`` or after ``import bioaug.embed``.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: Public functions, imported on first use: each is its stage's (callable) package.
_LAZY = ("embed", "evaluate")

__all__ = ["__version__", "embed", "evaluate"]


def __getattr__(name: str) -> object:
    """Import a public function's stage on first use: its package, callable as the function
    (the same object ``import bioaug.<name>`` binds, so the name never changes meaning)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'bioaug' has no attribute '{name}'")
    import importlib

    return importlib.import_module(f"bioaug.{name}")


def __dir__() -> list[str]:
    """The public names (what ``help(bioaug)`` and tab completion show)."""
    return sorted(__all__)
