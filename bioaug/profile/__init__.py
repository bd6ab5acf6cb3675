"""Image-based profiling: aggregate cells to wells and treatments, correct, export.

The stage between ``bioaug.embed`` and ``bioaug.evaluate``: per-plate normalisation against
the controls, sphering / TVN, Harmony and feature selection as an ordered, recorded recipe
(:class:`ProfileConfig`; without steps, the field's standard correction chosen for the data,
:mod:`bioaug.profile.standard`), and tables in pycytominer's layout.
"""

from __future__ import annotations

from bioaug.profile.config import (
    STEP_PARAMS,
    ProfileConfig,
    as_profile_config,
    make_profile_config,
    read_profile_config,
)
from bioaug.profile.pipeline import UNCORRECTED, Profiled, profile, profile_cells, steps_from_uns
from bioaug.profile.standard import StandardChoice, standard_steps
from bioaug.profile.steps import STEPS
from bioaug.profile.table import read_table, write_table

__all__ = ["STEPS", "STEP_PARAMS", "UNCORRECTED", "ProfileConfig", "Profiled",
           "StandardChoice", "as_profile_config", "make_profile_config", "profile",
           "profile_cells", "read_profile_config", "read_table", "standard_steps",
           "steps_from_uns", "write_table"]
