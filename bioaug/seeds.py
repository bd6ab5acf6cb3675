"""One rule for every seed a user gives: an integer from 0 to 2**32 - 1.

That is the range numpy's legacy seeding (``np.random.seed``, ``RandomState``) accepts, and
so the range of every library a command seeds through it (scikit-learn's
``random_state``, harmonypy, umap-learn). A seed outside it is a :class:`ConfigError`
naming the option before any work is done, never a traceback half-way through a command.
"""

from __future__ import annotations

import numbers
from typing import Any

from bioaug.errors import ConfigError

#: The largest seed numpy's legacy seeding accepts.
SEED_MAX = 2**32 - 1


def check_seed(value: Any, where: str) -> int:
    """``value`` as an ``int`` when it is a valid seed (0 … 2**32 - 1); ConfigError otherwise.

    Parameters
    ----------
    value
        The seed given (an integer, numpy integers included; ``bool`` and non-integral
        values are refused).
    where
        The option or parameter that gave it (``--seed``, ``seed``), named in the message.

    Returns
    -------
    The seed as a plain ``int``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"a seed must be an integer from 0 to {SEED_MAX}, not {value!r}",
                          where=where)
    if not 0 <= int(value) <= SEED_MAX:
        raise ConfigError(f"a seed must be an integer from 0 to {SEED_MAX} (2**32 - 1), not "
                          f"{int(value)}", where=where,
                          hint="numpy's legacy seeding, which scikit-learn uses, accepts no "
                               "other value")
    return int(value)
