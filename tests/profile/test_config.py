from __future__ import annotations

import pytest

from bioaug.errors import ConfigError
from bioaug.profile import STEP_PARAMS, STEPS, as_profile_config, read_profile_config


def test_steps_and_their_parameter_models_come_from_one_registry():
    assert set(STEPS) == set(STEP_PARAMS)
    cfg = as_profile_config(["center", {"sphere": {"scope": "global"}}])
    assert cfg.step_names() == ["center", "sphere"]
    assert cfg.steps[1].parsed().scope == "global" and cfg.steps[1].parsed().method == "zca"
    assert as_profile_config("robust,select").step_names() == ["robust", "select"]


def test_recipe_errors_name_the_key_path(tmp_path):
    with pytest.raises(ConfigError, match=r"steps\[1\]: unknown step 'spher' "
                                          r"\(did you mean 'sphere'\?\)"):
        as_profile_config(["center", "spher"])
    with pytest.raises(ConfigError, match=r"steps\[0\]\.sphere\.methd: .*did you mean "
                                          r"'method'"):
        as_profile_config([{"sphere": {"methd": "zca"}}])
    with pytest.raises(ConfigError, match=r"control: .*must read COLUMN=VALUE"):
        as_profile_config({"control": "DMSO"})
    f = tmp_path / "r.yaml"
    f.write_text("steps: [center]\nlevel: well\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: level: unknown key"):
        read_profile_config(f)
