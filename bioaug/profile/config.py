"""The profiling recipe: aggregation level, control query and ordered correction steps.

A recipe is a small YAML file (or the same keys as flags of ``bioaug profile``)::

    correct_at: well          # cell or well: where the corrections are fitted and applied
    output: well              # cell, well or treatment (median of corrected wells)
    aggregate: mean           # cells → well: mean or median
    control: moa=DMSO         # the control query, COLUMN=VALUE (case-insensitive)
    plate: plate              # the per-plate column
    steps:                    # applied in this order
      - center                # a name alone takes the defaults
      - sphere: {scope: global, method: zca}
      - select: {correlation_threshold: 0.95}

``steps`` may also be ``standard`` (the default when no steps are given: the field's
standard correction, chosen for the data by :mod:`bioaug.profile.standard`) or ``none``
(no correction). One pydantic model per step kind (:data:`STEP_PARAMS`) validates the
parameters; the registry :data:`bioaug.profile.steps.STEPS` lists the kinds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bioaug.errors import ConfigError, unknown_choice, validation_error, validation_problems
from bioaug.io import read_yaml_mapping
from bioaug.profile.steps import STEPS


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocationScaleParams(_Params):
    """center / standardize / robust."""

    scope: Literal["plate", "global"] = Field(
        "plate", description="fit per plate (against that plate's controls) or globally")
    samples: Literal["controls", "all"] = Field(
        "controls", description="fit on the control profiles, or on every profile of the "
        "group (pycytominer's samples='all')")
    epsilon: float = Field(1e-6, ge=0, description="scales at or below this are left at 1")


class SphereParams(_Params):
    scope: Literal["plate", "global"] = Field(
        "plate", description="per plate (TVN) or on every plate's controls")
    method: Literal["zca", "pca"] = Field("zca", description="ZCA keeps the features' axes; "
                                          "PCA keeps the top components")
    samples: Literal["controls", "all"] = Field(
        "controls", description="fit on the control profiles, or on every profile")
    epsilon: float = Field(1e-6, ge=0, description="added to the eigenvalues")
    n_components: int | None = Field(None, ge=1, description="PCA components kept (default: "
                                     "those with non-zero control variance)")


class HarmonyParams(_Params):
    batch_key: str = Field("batch", description="obs column of the batches to integrate")
    max_iter: int = Field(10, ge=1, description="Harmony iterations")


class SelectParams(_Params):
    variance_threshold: float | None = Field(1e-8, ge=0, description="drop features whose "
                                             "variance is at or below this (None: keep)")
    correlation_threshold: float | None = Field(0.95, gt=0, le=1, description="drop a feature "
                                                "correlated above this with one kept")


#: step name → its parameter model.
STEP_PARAMS: dict[str, type[_Params]] = {
    "center": LocationScaleParams, "standardize": LocationScaleParams,
    "robust": LocationScaleParams, "sphere": SphereParams, "harmony": HarmonyParams,
    "select": SelectParams,
}
assert set(STEP_PARAMS) == set(STEPS)

#: ``steps`` value: the field's standard correction, chosen for the data at hand.
STANDARD = "standard"
#: ``steps`` value: no correction.
NONE = "none"


class StepSpec(BaseModel):
    """One step of the recipe: its name and validated parameters."""

    model_config = ConfigDict(extra="forbid")
    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    def parsed(self) -> _Params:
        return STEP_PARAMS[self.name](**self.params)


class ProfileConfig(BaseModel):
    """The profiling recipe (see the module docstring).

    Examples
    --------
    >>> from bioaug.profile import ProfileConfig
    >>> config = ProfileConfig(steps=["center", {"sphere": {"scope": "global"}}],
    ...                        output="treatment")
    >>> config.step_names(), config.correct_at, config.output, config.corrects()
    (['center', 'sphere'], 'well', 'treatment', True)
    >>> ProfileConfig().is_standard(), ProfileConfig(steps="none").corrects()
    (True, False)
    """

    model_config = ConfigDict(extra="forbid")
    bioaug_profile: Literal[1] = 1
    rep: str = Field("X_bioaug", description="obsm key of the features")
    correct_at: Literal["cell", "well"] = Field("well", description="level of the corrections")
    output: Literal["cell", "well", "treatment"] = Field("well", description="level written")
    aggregate: Literal["mean", "median"] = Field("mean", description="cells → well")
    control: str = Field("moa=DMSO", description="control query COLUMN=VALUE")
    plate: str = Field("plate", description="per-plate column")
    steps: list[StepSpec] | Literal["standard"] = Field(
        STANDARD, description="correction steps in order; 'standard' (the field's standard, "
        "chosen for the data) or 'none'")

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str) and value.strip().lower() in (STANDARD, NONE):
            return STANDARD if value.strip().lower() == STANDARD else []
        if not isinstance(value, list):
            raise ValueError("steps is a list of step names or {name: {parameters}}, "
                             f"'{STANDARD}' or '{NONE}'")
        out = []
        for i, item in enumerate(value):
            if isinstance(item, StepSpec):
                out.append(item)
                continue
            if isinstance(item, str):
                name, params = item, {}
            elif isinstance(item, dict) and len(item) == 1:
                name, params = next(iter(item.items()))
                params = params or {}
            else:
                raise ValueError(f"steps[{i}]: a step name or {{name: {{parameters}}}}")
            if name not in STEP_PARAMS:
                raise ValueError(f"steps[{i}]: {unknown_choice('step', str(name), STEPS)}")
            if not isinstance(params, dict):
                raise ValueError(f"steps[{i}].{name}: parameters are a mapping")
            try:
                STEP_PARAMS[name](**params)
            except ValidationError as exc:
                raise ValueError("; ".join(validation_problems(
                    exc, STEP_PARAMS[name], prefix=("steps", i, name)))) from None
            out.append(StepSpec(name=name, params=params))
        return out

    @field_validator("control")
    @classmethod
    def _control(cls, value: str) -> str:
        parse_control(value)
        return value

    def step_names(self) -> list[str]:
        """The names of the steps (empty for ``standard``, chosen only once data is seen)."""
        return [] if self.is_standard() else [s.name for s in self.steps]

    def is_standard(self) -> bool:
        """Whether the steps are the standard correction, still to be chosen for the data."""
        return self.steps == STANDARD

    def corrects(self) -> bool:
        """Whether the recipe changes the profiles (standard steps, or any step given)."""
        return self.is_standard() or bool(self.step_specs())

    def step_specs(self) -> list[StepSpec]:
        """The explicit steps (empty for ``standard`` until it is chosen)."""
        return [] if isinstance(self.steps, str) else list(self.steps)


def parse_control(query: str) -> tuple[str, str]:
    """``COLUMN=VALUE`` (or ``COLUMN==VALUE``) → (column, value)."""
    text = str(query).replace("==", "=")
    if text.count("=") != 1:
        raise ValueError(f"control query {query!r} must read COLUMN=VALUE, e.g. moa=DMSO")
    col, val = (t.strip().strip("'\"") for t in text.split("="))
    if not col or not val:
        raise ValueError(f"control query {query!r} must read COLUMN=VALUE, e.g. moa=DMSO")
    return col, val


def parse_steps(text: str) -> list[str] | str:
    """``"center,sphere"`` → ``["center", "sphere"]``; ``standard`` and ``none`` as they are."""
    if text.strip().lower() in (STANDARD, NONE):
        return text.strip().lower()
    return [s.strip() for s in text.split(",") if s.strip()]


def make_profile_config(values: dict[str, Any], source: str = "<profile recipe>"
                        ) -> ProfileConfig:
    """Validate a dict into a :class:`ProfileConfig`; errors name the key path.

    Parameters
    ----------
    values
        The recipe's keys (``steps``, ``control``, ``output`` …; see the module docstring).
    source
        Where the values come from, named in error messages.

    Returns
    -------
    ProfileConfig
        The recipe, every key not given at its default.

    Examples
    --------
    >>> from bioaug.profile import make_profile_config
    >>> config = make_profile_config({"steps": ["center", {"sphere": {"method": "pca"}}],
    ...                               "output": "treatment"})
    >>> config.step_names(), config.output, config.control
    (['center', 'sphere'], 'treatment', 'moa=DMSO')
    >>> make_profile_config({"steps": ["centre"]}, source="recipe.yaml")
    Traceback (most recent call last):
    ...
    bioaug.errors.ConfigError: recipe.yaml: steps[0]: unknown step 'centre' (did you mean 'center'?); known: center, harmony, robust, select, sphere, standardize
    """
    try:
        return ProfileConfig(**values)
    except ValidationError as exc:
        raise validation_error(exc, ProfileConfig, where=source) from None


def read_profile_config(path: str | os.PathLike) -> ProfileConfig:
    """A recipe from a YAML file.

    Parameters
    ----------
    path
        A YAML mapping with the keys of :class:`ProfileConfig`.

    Returns
    -------
    ProfileConfig
        The validated recipe; a mistake is a ConfigError naming the file and key path.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from bioaug.profile import read_profile_config
    >>> path = Path(tempfile.mkdtemp()) / "recipe.yaml"
    >>> _ = path.write_text("control: compound=DMSO\\nsteps:\\n  - robust\\n  - select\\n")
    >>> config = read_profile_config(path)
    >>> config.control, config.step_names()
    ('compound=DMSO', ['robust', 'select'])
    """
    data = read_yaml_mapping(path, "profile recipe", "keys (steps:, control: …)")
    return make_profile_config(data, source=str(path))


def as_profile_config(profile: Any) -> ProfileConfig:
    """A :class:`ProfileConfig` from a config, a YAML path, a list of step names, a dict, or
    None (every default: the standard correction).

    Parameters
    ----------
    profile
        A :class:`ProfileConfig` (returned as it is); a ``.yaml`` path; step names as a list
        or a comma-separated string (``"center,sphere"``, ``"standard"``, ``"none"``); a dict
        of recipe keys; or None.

    Returns
    -------
    ProfileConfig
        The validated recipe.

    Examples
    --------
    >>> from bioaug.profile import as_profile_config
    >>> as_profile_config("center,sphere").step_names()
    ['center', 'sphere']
    >>> as_profile_config(None).is_standard()
    True
    >>> as_profile_config("none").corrects()
    False
    """
    if profile is None:
        return ProfileConfig()
    if isinstance(profile, ProfileConfig):
        return profile
    if isinstance(profile, dict):
        return make_profile_config(profile)
    if isinstance(profile, (list, tuple)):
        return make_profile_config({"steps": list(profile)})
    if isinstance(profile, (str, os.PathLike)):
        text = str(profile)
        if text.endswith((".yaml", ".yml")) or Path(text).is_file():
            return read_profile_config(text)
        return make_profile_config({"steps": parse_steps(text)})
    raise ConfigError(f"profile must be a recipe, a YAML path or step names, not "
                      f"{type(profile).__name__}")
