"""Key paths into protocol dictionaries (pure; no augmentation engine needed)."""

from __future__ import annotations

import pytest

from bioaug.errors import ConfigError
from bioaug.study.keypath import apply_value, get_value, parse_key_path, valid_paths


def proto() -> dict:
    return {
        "bioaug_protocol": 1,
        "name": "toy",
        "views": [
            {"crop_size": 32, "steps": [
                {"rotate90": {"p": 1.0}},
                {"stain_jitter": {"brightness": 0.2, "contrast": 0.2, "p": 0.8}},
                {"gaussian_blur": {"sigma": [0.1, 1.5], "p": 0.3}},
            ]},
            {"same_as": 0},
        ],
    }


def test_parse_forms():
    kp = parse_key_path("views[*].steps.stain_jitter.p")
    assert (kp.view, kp.op, kp.occurrence, kp.param) == (None, "stain_jitter", None, "p")
    kp = parse_key_path("views[1].steps.flip[1].p")
    assert (kp.view, kp.op, kp.occurrence, kp.param) == (1, "flip", 1, "p")
    assert parse_key_path("views[0].crop_size").is_crop_size


@pytest.mark.parametrize("bad", ["views.steps.flip.p", "views[*].flip.p", "steps.flip.p",
                                 "views[a].steps.flip.p", "views[*].steps.flip"])
def test_malformed_path(bad):
    with pytest.raises(ConfigError, match="malformed key path"):
        parse_key_path(bad)


def test_star_sets_every_view_and_same_as_follows():
    out = apply_value(proto(), "views[*].steps.stain_jitter.p", 0.25)
    assert get_value(out, "views[*].steps.stain_jitter.p") == [0.25]
    assert out["views"][1] == {"same_as": 0}
    assert proto()["views"][0]["steps"][1]["stain_jitter"]["p"] == 0.8  # input untouched


def test_single_view_materialises_same_as():
    out = apply_value(proto(), "views[1].steps.gaussian_blur.sigma", [0.5, 0.5])
    assert out["views"][1]["steps"][2]["gaussian_blur"]["sigma"] == [0.5, 0.5]
    assert out["views"][0]["steps"][2]["gaussian_blur"]["sigma"] == [0.1, 1.5]
    assert out["views"][1]["crop_size"] == 32


def test_crop_size_path():
    out = apply_value(proto(), "views[*].crop_size", 24)
    assert out["views"][0]["crop_size"] == 24


def test_missing_op_lists_valid_paths_and_suggests():
    with pytest.raises(ConfigError) as info:
        apply_value(proto(), "views[*].steps.stain_jiter.p", 0.5)
    text = info.value.format()
    assert "matches no step" in text
    assert "did you mean 'stain_jitter'" in text
    assert "views[*].steps.stain_jitter.{brightness, contrast, p}" in text
    assert "replace * by a view index, views[0] … views[1]" in text


def test_view_out_of_range():
    with pytest.raises(ConfigError, match=r"has 2 view\(s\)"):
        apply_value(proto(), "views[5].steps.rotate90.p", 0.5)


def test_unknown_param_with_registry():
    ops = {"stain_jitter": ["brightness", "contrast", "gamma", "per_channel", "p"]}
    out = apply_value(proto(), "views[*].steps.stain_jitter.gamma", 0.1, ops)
    assert get_value(out, "views[0].steps.stain_jitter.gamma") == [0.1]
    with pytest.raises(ConfigError, match=r"has no parameter 'brightnes'.*did you mean"):
        apply_value(proto(), "views[*].steps.stain_jitter.brightnes", 0.1, ops)


def test_repeated_op_needs_occurrence():
    p = proto()
    p["views"][0]["steps"].append({"rotate90": {"p": 0.5}})
    with pytest.raises(ConfigError, match="ambiguous"):
        apply_value(p, "views[0].steps.rotate90.p", 0.1)
    out = apply_value(p, "views[0].steps.rotate90[1].p", 0.1)
    assert out["views"][0]["steps"][3]["rotate90"]["p"] == 0.1
    assert out["views"][0]["steps"][0]["rotate90"]["p"] == 1.0
    assert "views[0].steps.rotate90[1].p" in valid_paths(p)
