"""Which corrections profiles carry already, so that none is applied a second time.

``bioaug profile`` records in its output ``uns["bioaug"]["corrected"]``: obsm key → the
correction steps those profiles went through, all of them, across runs. ``bioaug export``
writes the record as a :data:`TABLE_COLUMN` column (``standardize,sphere``) and reading
the table back restores it. Correcting corrected profiles again (standardising
standardised profiles, sphering sphered ones) is refused: the second correction would be
reported as if it were the first, "before → after" with a corrected "before". Only a
recipe without steps (``--steps none``) passes, which aggregates and records, correcting
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bioaug.errors import DataError

#: Key of the record in ``uns["bioaug"]``.
CORRECTED_KEY = "corrected"
#: Metadata column of an exported table naming the corrections of its features.
TABLE_COLUMN = "Metadata_bioaug_corrected"
#: Separator of the step names in :data:`TABLE_COLUMN`.
SEPARATOR = ","


def _names(value: Any) -> list[str]:
    """Step names from a list, an array (as read back from ``.h5ad``) or a separated text."""
    if isinstance(value, str):
        return [s.strip() for s in value.split(SEPARATOR) if s.strip()]
    if isinstance(value, Mapping):
        value = [value[k] for k in sorted(value, key=str)]
    return [str(v) for v in np.atleast_1d(np.asarray(value, dtype=object)).tolist() if str(v)]


def corrected_steps(adata: Any, rep: str) -> list[str]:
    """The correction steps the profiles in ``obsm[rep]`` went through (empty: none)."""
    prov = adata.uns.get("bioaug") if hasattr(adata, "uns") else None
    record = prov.get(CORRECTED_KEY) if isinstance(prov, Mapping) else None
    if not isinstance(record, Mapping) or rep not in record:
        return []
    return _names(record[rep])


def corrections_record(steps: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """The ``uns["bioaug"]["corrected"]`` record of obsm key → steps (keys without steps
    are left out)."""
    return {str(k): list(v) for k, v in steps.items() if v}


def refuse_second_correction(adata: Any, rep: str, corrects: bool, *, where: str | None,
                             hint: str) -> None:
    """DataError when ``obsm[rep]`` holds corrected profiles and ``corrects`` (the recipe
    would correct them again)."""
    steps = corrected_steps(adata, rep)
    if steps and corrects:
        raise DataError(f"obsm['{rep}'] holds profiles corrected already "
                        f"({' → '.join(steps)}); correcting them again would report a second "
                        "correction as the first", where=where, hint=hint)


def steps_of_column(values: Any, where: str | None = None) -> list[str]:
    """The steps a table's :data:`TABLE_COLUMN` names (one value for every row)."""
    import pandas as pd

    texts = sorted({str(v) for v in pd.Series(values).dropna().tolist()})
    if len(texts) > 1:
        raise DataError(f"{TABLE_COLUMN} names different corrections in different rows "
                        f"({' | '.join(texts[:3])}); a table holds profiles corrected one way",
                        where=where, hint="export each set of profiles to its own table")
    return _names(texts[0]) if texts else []
