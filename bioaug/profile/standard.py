"""The standard correction of image-based profiles, chosen for the data at hand.

What ``bioaug profile`` applies when no steps are given (``steps: standard``):

1. **standardize per plate on the negative controls**: subtract the controls' mean, divide
   by their standard deviation, plate by plate — pycytominer's
   ``normalize(method="standardize", samples="<control query>")`` applied per plate, the
   usual first step of image-based profiling (Caicedo et al., "Data-analysis strategies for
   image-based cell profiling", Nat. Methods 2017);
2. **sphere on the controls** (ZCA whitening fitted on every plate's control profiles
   together): the typical variation normalisation (TVN) of Ando et al., "Improving
   phenotypic measurements in high-content imaging screens" (bioRxiv 161422, 2017), as
   pycytominer's ``normalize(method="spherize", samples="<control query>")``.

Fallbacks, each stated in the printed summary and in the recorded provenance:

- a plate with fewer than :data:`MIN_PLATE_CONTROLS` control profiles (a standard deviation
  from so few is mostly noise): every plate is standardised on all of its profiles
  (whole-plate, pycytominer's ``samples="all"``);
- no control column or no row matching the default control query: whole-plate
  standardisation, no sphering (a control query the user gave that matches nothing stays
  an error);
- no more control profiles than features (the control covariance cannot be inverted):
  sphering is skipped (whitening on every profile would flatten the phenotypes themselves);
- no plate column: one plate (``scope: global``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bioaug.profile.config import parse_control

#: Fewest control profiles per plate for standardising on the controls (the relative
#: error of a standard deviation from ``n`` normal samples is about ``1/√(2(n−1))``: 35 %
#: at 5). BBBC021 has 6 DMSO wells per plate.
MIN_PLATE_CONTROLS = 5


@dataclass
class StandardChoice:
    """The steps chosen, why (one line per decision), and the control rows (or None).

    Examples
    --------
    >>> import pandas as pd
    >>> from bioaug.profile import standard_steps
    >>> wells = pd.DataFrame({"plate": "P1", "moa": ["DMSO"] * 6 + ["tubulin"] * 2})
    >>> record = standard_steps(wells, 2, control="moa=DMSO", plate="plate").to_record()
    >>> record["steps"], record["min_plate_controls"]
    (['standardize', 'sphere'], 5)
    """

    steps: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    controls: np.ndarray | None = None

    def to_record(self) -> dict[str, Any]:
        """What ``uns["bioaug"]["profile"]["standard"]`` stores."""
        return {"steps": [next(iter(s)) for s in self.steps], "notes": list(self.notes),
                "min_plate_controls": MIN_PLATE_CONTROLS}


def find_controls(obs: pd.DataFrame, query: str) -> tuple[np.ndarray | None, str]:
    """(control rows, "") or (None, why none were found) for ``COLUMN=VALUE``."""
    col, value = parse_control(query)
    if col not in obs.columns:
        return None, f"no '{col}' column for the control query {query}"
    mask = obs[col].astype(str).str.strip().str.lower().eq(value.lower()).to_numpy()
    if not mask.any():
        return None, f"no row matches the control query {query}"
    return mask, ""


def _standardize(obs: pd.DataFrame, controls: np.ndarray | None, plate: str,
                 query: str) -> tuple[dict[str, Any], list[str]]:
    """The standardisation step and the lines that explain it."""
    has_plate = plate in obs.columns
    scope = "plate" if has_plate else "global"
    notes = [] if has_plate else [f"no '{plate}' column: all profiles are one plate"]
    groups = obs[plate].astype(str) if has_plate else pd.Series("all", index=obs.index)
    if controls is not None:
        per_plate = pd.Series(controls, index=obs.index).groupby(groups).sum()
        few = per_plate[per_plate < MIN_PLATE_CONTROLS]
        if few.empty:
            notes.insert(0, f"standardize: per plate on its control profiles ({query}; "
                         f"{int(per_plate.min())}–{int(per_plate.max())} per plate), as "
                         "pycytominer's normalize(method='standardize', samples=controls)")
            return {"standardize": {"scope": scope, "samples": "controls"}}, notes
        shown = ", ".join(f"{k} ({int(v)})" for k, v in few.head(5).items())
        why = (f"{len(few)} plate(s) have fewer than {MIN_PLATE_CONTROLS} control profiles: "
               f"{shown}{' …' if len(few) > 5 else ''}")
    else:
        why = "no controls"
    if has_plate and groups.value_counts().min() < 2:
        scope = "global"
        why += "; a plate has a single profile, so all plates are standardised together"
    notes.insert(0, f"standardize: on every profile of each plate (whole-plate, "
                 f"samples='all'): {why}")
    return {"standardize": {"scope": scope, "samples": "all"}}, notes


def _sphere(controls: np.ndarray | None, n_features: int) -> tuple[list[dict[str, Any]], str]:
    """The sphering step (or none) and the line that explains it."""
    if controls is None:
        return [], "sphere: skipped: no control profiles to fit it on"
    n = int(controls.sum())
    if n <= n_features:
        return [], (f"sphere: skipped: {n} control profiles for {n_features} features; "
                    "whitening needs more control profiles than features (correct at the "
                    "cell level, or embed fewer features)")
    return ([{"sphere": {"scope": "global", "method": "zca", "samples": "controls"}}],
            f"sphere: ZCA fitted on all {n} control profiles together (TVN, Ando et al. "
            "2017)")


def standard_steps(obs: pd.DataFrame, n_features: int, *, control: str, plate: str
                   ) -> StandardChoice:
    """The standard correction for profiles ``obs`` (see the module docstring).

    Parameters
    ----------
    obs
        One row per profile (cell or well), with the plate and control columns.
    n_features
        The number of features (sphering needs more control profiles than features).
    control
        The control query, ``COLUMN=VALUE``.
    plate
        The per-plate column.

    Returns
    -------
    StandardChoice
        The steps (``{name: parameters}``), a note per decision and the control rows.

    Examples
    --------
    Six control wells and two treated wells on one plate, two features: standardise on
    the controls, then sphere on them:

    >>> import pandas as pd
    >>> from bioaug.profile import standard_steps
    >>> wells = pd.DataFrame({"plate": "P1", "moa": ["DMSO"] * 6 + ["tubulin"] * 2})
    >>> choice = standard_steps(wells, 2, control="moa=DMSO", plate="plate")
    >>> [next(iter(step)) for step in choice.steps], int(choice.controls.sum())
    (['standardize', 'sphere'], 6)

    With fewer than :data:`MIN_PLATE_CONTROLS` controls per plate, each plate is
    standardised on all of its profiles and there is nothing to sphere on:

    >>> choice = standard_steps(wells.iloc[4:], 2, control="moa=DMSO", plate="plate")
    >>> choice.steps
    [{'standardize': {'scope': 'plate', 'samples': 'all'}}]
    """
    controls, missing = find_controls(obs, control)
    step, notes = _standardize(obs, controls, plate, control)
    sphere, why = _sphere(controls, n_features)
    if missing:
        notes.insert(0, f"{missing}: correcting without controls")
    return StandardChoice([step, *sphere], [*notes, why], controls)
