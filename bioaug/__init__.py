"""bioaug: augmentation protocols, self-supervised training and phenotype evaluation.

The package is a one-way flow of stages (see the README):
``data`` → ``augment`` → ``models`` + ``methods`` → ``train`` → ``embed`` → ``evaluate``,
with ``study`` orchestrating them. The command line (``bioaug.cli``) is a thin layer on
top of the Python API exposed here.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "embed", "evaluate"]


def embed(*args: Any, **kwargs: Any) -> Any:
    """Embed a store with one or more checkpoints; see :func:`bioaug.embed.embed`."""
    from bioaug.embed import embed as _embed

    return _embed(*args, **kwargs)


def evaluate(*args: Any, **kwargs: Any) -> Any:
    """Score an embedding against labels; see :func:`bioaug.evaluate.evaluate`."""
    from bioaug.evaluate import evaluate as _evaluate

    return _evaluate(*args, **kwargs)
