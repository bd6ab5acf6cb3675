"""Sweep files: schema, key paths against real protocols, points, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bioaug.errors import ConfigError
from bioaug.study.sweep import Sweep
from bioaug.study.sweep_config import (
    enumerate_points,
    load_sweep_config,
    point_protocol,
    validate_axes,
    value_key,
)

AXIS = "views[*].steps.stain_jitter.p"


def write(tmp_path: Path, **over) -> Path:
    cfg = {"bioaug_sweep": 1, "name": "t", "protocol": "bbbc021-expert", "data": "store",
           "method": "moco_v2", "backbone": "vgg13_bn",
           "train": {"epochs": 1, "batch_size": 32, "width": 0.0625, "crop": 32,
                     "num_workers": 0},
           "axes": {AXIS: [0.0, 1.0]}, "seeds": [0]}
    cfg.update(over)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_points_are_product_times_seeds(tmp_path):
    cfg = load_sweep_config(write(tmp_path, axes={
        AXIS: [0.0, 0.5, 1.0], "views[0].steps.gaussian_blur.sigma": [[0.1, 0.5], [0.1, 2.0]]},
        seeds=[0, 1]))
    pts = enumerate_points(cfg)
    assert len(pts) == 12
    assert [p.index for p in pts] == list(range(12))
    assert (pts[0].seed, pts[1].seed) == (0, 1)  # seeds vary fastest
    assert pts[2].params == {AXIS: 0.0, "views[0].steps.gaussian_blur.sigma": [0.1, 2.0]}
    assert Path(cfg.data) == (tmp_path / "store").resolve()  # relative to the sweep file


def test_point_protocol_applies_and_validates(tmp_path):
    cfg = load_sweep_config(write(tmp_path))
    base = validate_axes(cfg)
    proto = point_protocol(base, {AXIS: 0.25, "views[1].steps.gaussian_blur.sigma": [2.0, 2.0]})
    d = proto.to_dict()
    steps0 = {next(iter(s)): next(iter(s.values())) for s in d["views"][0]["steps"]}
    steps1 = {next(iter(s)): next(iter(s.values())) for s in d["views"][1]["steps"]}
    assert steps0["stain_jitter"]["p"] == 0.25 and steps1["stain_jitter"]["p"] == 0.25
    assert list(steps1["gaussian_blur"]["sigma"]) == [2.0, 2.0]
    assert list(steps0["gaussian_blur"]["sigma"]) == [0.1, 1.0]


def test_path_matching_no_step_lists_valid_paths(tmp_path):
    path = write(tmp_path, axes={"views[*].steps.color_jitter.p": [0.1, 0.2]})
    with pytest.raises(ConfigError) as info:
        validate_axes(load_sweep_config(path), source=str(path))
    text = info.value.format()
    assert "matches no step of protocol 'bbbc021-expert'" in text
    assert "views[*].steps.stain_jitter.{" in text and "gamma" in text
    assert str(path) in text


def test_unknown_parameter_is_named(tmp_path):
    path = write(tmp_path, axes={"views[*].steps.stain_jitter.brightnes": [0.1]})
    with pytest.raises(ConfigError, match=r"has no parameter 'brightnes'.*did you mean"):
        validate_axes(load_sweep_config(path))


def test_value_out_of_range_names_axis_and_value(tmp_path):
    path = write(tmp_path, axes={AXIS: [0.5, 1.5]})
    with pytest.raises(ConfigError) as info:
        validate_axes(load_sweep_config(path), source=str(path))
    text = info.value.format()
    assert f"axes.{AXIS}" in text and "1.5" in text
    assert "stain_jitter.p" in text


def test_empty_axis_and_repeated_values(tmp_path):
    with pytest.raises(ConfigError, match=r"axes: axis 'views\[\*\]\.steps\.stain_jitter\.p' "
                                          r"has no values"):
        load_sweep_config(write(tmp_path, axes={AXIS: []}))
    with pytest.raises(ConfigError, match=r"lists the value 0\.5 twice"):
        load_sweep_config(write(tmp_path, axes={AXIS: [0.5, 0.5]}))


def test_schema_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key.*did you mean 'seeds'"):
        load_sweep_config(write(tmp_path, seed=[0]))
    with pytest.raises(ConfigError, match=r"train\.seed is set by the sweep itself"):
        load_sweep_config(write(tmp_path, train={"seed": 1}))
    with pytest.raises(ConfigError, match="malformed key path"):
        validate_axes(load_sweep_config(write(tmp_path, axes={"stain_jitter.p": [0.1]})))
    path = tmp_path / "nover.yaml"
    path.write_text("protocol: none\ndata: x\n")
    with pytest.raises(ConfigError, match="missing 'bioaug_sweep: 1'"):
        load_sweep_config(path)


def test_bad_train_setting_fails_before_running(tmp_path):
    path = write(tmp_path, train={"epochz": 1})
    with pytest.raises(ConfigError, match=r"epochz: unknown key.*did you mean 'epochs'"):
        Sweep.create(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_directory_of_another_sweep_is_refused(tmp_path, tiny_store):
    data = str(tiny_store)
    Sweep.create(write(tmp_path, data=data), tmp_path / "out")
    assert (tmp_path / "out" / "sweep.yaml").is_file()
    Sweep.create(write(tmp_path, data=data), tmp_path / "out")  # same sweep: reopened
    with pytest.raises(ConfigError) as info:
        Sweep.create(write(tmp_path, data=data, axes={AXIS: [0.0, 0.5]}, seeds=[0, 1]),
                     tmp_path / "out")
    text = info.value.format()
    assert "holds a different sweep" in text
    assert f"axes.{AXIS}: [0.0, 1.0] in the existing sweep, now [0.0, 0.5]" in text
    assert "seeds: [0] in the existing sweep, now [0, 1]" in text


def test_point_out_of_range(tmp_path, tiny_store):
    sweep = Sweep.create(write(tmp_path, data=str(tiny_store)), tmp_path / "out")
    with pytest.raises(ConfigError, match=r"--point 7 is out of range: this sweep has 2 points"):
        sweep.run(only=7)


def test_print_commands(tmp_path, tiny_store):
    path = write(tmp_path, data=str(tiny_store))
    sweep = Sweep.create(path, tmp_path / "out")
    cmds = sweep.commands(path)
    assert len(cmds) == 2
    assert cmds[1].endswith("--point 1") and str(path.resolve()) in cmds[1]


def test_bad_evaluate_option_and_label(tmp_path, tiny_store):
    with pytest.raises(ConfigError, match=r"evaluate\.plots: not an evaluation option.*"
                                          r"did you mean 'plot'"):
        Sweep.create(write(tmp_path, evaluate={"plots": False}), tmp_path / "out")
    with pytest.raises(ConfigError, match=r"label 'mao' is not a column.*did you mean 'moa'"):
        Sweep.create(write(tmp_path, data=str(tiny_store), label="mao"), tmp_path / "o2")
    assert not (tmp_path / "o2").exists()  # checked before the directory is claimed
    with pytest.raises(ConfigError, match=r"sweep\.yaml: data: no store at"):
        Sweep.create(write(tmp_path, data="missing"), tmp_path / "o3")
    assert not (tmp_path / "o3").exists()


def test_a_key_given_twice_in_a_sweep_file_is_refused(tmp_path):
    path = write(tmp_path)
    path.write_text(path.read_text() + "name: again\n")
    with pytest.raises(ConfigError, match=r"key 'name' \(lines 2 and \d+\) is given twice"):
        load_sweep_config(path)


def test_sweep_seeds_follow_the_one_seed_rule(tmp_path):
    with pytest.raises(ConfigError, match=r"seeds\[1\]: a seed must be an integer from 0 to "
                                          "4294967295"):
        load_sweep_config(write(tmp_path, seeds=[0, 2**40]))


def test_values_equal_as_numbers_are_repeats(tmp_path):
    with pytest.raises(ConfigError, match=r"axes: axis 'views\[\*\]\.crop_size' lists the same "
                                          r"value twice, written 32 \(item 0\) and 32\.0 "
                                          r"\(item 1\)"):
        load_sweep_config(write(tmp_path, axes={"views[*].crop_size": [32, 32.0]}))
    sigma = "views[0].steps.gaussian_blur.sigma"
    with pytest.raises(ConfigError, match=r"written \[0\.1, 1\] \(item 0\) and \[0\.1, 1\.0\]"):
        load_sweep_config(write(tmp_path, axes={sigma: [[0.1, 1], [0.1, 1.0]]}))


def test_value_key_compares_numbers_by_value_only():
    assert value_key(32) == value_key(32.0)
    assert value_key({"a": [1, 2]}) == value_key({"a": [1.0, 2.0]})
    assert value_key(True) != value_key(1)  # a switch is not the number one
    assert value_key("32") != value_key(32)
    assert value_key(2**60) != value_key(2**60 + 1)  # exact, not rounded through float
