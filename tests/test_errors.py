"""The one translator of pydantic errors: every problem at once, key paths, one wording."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bioaug.errors import ConfigError, DataError, format_path, validation_error


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sigma: float = Field(1.0, ge=0.0, le=5.0)


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(1, gt=0)
    mode: Literal["fast", "slow"] = "fast"
    name: str
    steps: list[Inner] = []


def _error(values: dict, **kw) -> ConfigError:
    with pytest.raises(ValidationError) as info:
        Outer(**values)
    return validation_error(info.value, Outer, **kw)


def test_every_problem_is_reported_at_once_with_its_key_path() -> None:
    err = _error({"epochs": 0, "mode": "quick", "steps": [{}, {"sigma": 9}]},
                 what="invalid run", where="run.yaml")
    text = str(err)
    assert text.startswith("run.yaml: invalid run: 4 problems:\n")
    assert "  epochs: must be more than 0 (got 0)" in text
    assert "  mode: must be one of 'fast' or 'slow' (got 'quick')" in text
    assert "  name: required" in text
    assert "  steps[1].sigma: must be at most 5.0 (got 9)" in text


def test_unknown_key_says_did_you_mean_and_lists_the_keys_of_its_model() -> None:
    err = _error({"name": "a", "epochz": 2, "steps": [{"sigmaa": 1}]})
    lines = {line.strip() for line in str(err).splitlines()[1:]}
    assert lines == {
        "epochz: unknown key (did you mean 'epochs'?); known: epochs, mode, name, steps",
        "steps[0].sigmaa: unknown key (did you mean 'sigma'?); known: sigma"}


def test_one_problem_is_one_line_with_flags_and_error_class() -> None:
    err = _error({"name": "a", "epochs": -1}, flags=True, error=DataError, hint="fix it")
    assert isinstance(err, DataError)
    assert err.message == "epochs (--epochs): must be more than 0 (got -1)"
    assert err.hint == "fix it"


def test_format_path() -> None:
    assert format_path(("views", 0, "steps", 3, "flip")) == "views[0].steps[3].flip"
    assert format_path(()) == ""
